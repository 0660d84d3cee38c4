"""The judge in the writer's hands: token alternatives, rewrite from a token, suggestions for a weak sentence.

    >>> eng = Engine.load()                                                                # doctest: +SKIP
    >>> r = writer.score(eng, Brief(task="A ghost story"), "The lamp was cold.")             # doctest: +SKIP
    >>> [(a.text, a.p, a.i) for a in alternatives(eng, r, 1)]                                # doctest: +SKIP
    >>> last = list(rewrite(eng, brief, Sampler(seed=1), "chat", ids, 1, token))[-1]         # doctest: +SKIP
    >>> suggest(eng, brief, text, *weakspots.weak(weakspots.from_scored(r))[0].span(), Sampler(), "chat")  # doctest: +SKIP

Alternatives cost no model pass: a draft's twin stream and a pasted text's two passes keep the top-k rows of
both readers (`ScoredText.top`), and the panel is arithmetic on them (assistant/alternatives.py). A rewrite
from token t with alternative a is the writer's Continue with `ids[:t] + [a]` as the text already written:
the same model, sampler, guidance and strength, streamed with its live score, and the readers read the kept
prefix, so one score covers the whole new draft. A suggestion is a short draft from a rewrite prompt (the
brief, the text before and after the sentence: assistant/brief.py), scored in place: the whole text with the
sentence replaced, ranked by the ranking score with the copy guard (assistant/ranking.py).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Iterator

from . import alternatives as alt
from . import ranking, scoring, surprise, weakspots, writer
from .brief import PASSAGE_HEADER, Brief, prompt, rewrite_message
from .draft import MAX_LANES
from .engine import Engine
from .errors import BadInput, BadText
from .sampler import Sampler
from .scoring import ScoredText
from .writer import Update

MIN_NEW_TOKENS = 16        # a rewrite from near the end of a draft still gets room to write
MAX_SUGGESTIONS = 6
SUGGEST_TRIES = 2          # drafts per wanted suggestion (some come back empty or the same), at most MAX_LANES
SUGGEST_TEMPERATURE = 0.9  # a little above the writer's default: the point is to see other ways
QUOTES = "\"“”«»"
REWRITE_LABELS = ("New sentence:", "Rewritten sentence:", "Sentence:", f"{PASSAGE_HEADER}")


@dataclass(frozen=True)
class Version:
    """One version of a draft or of a pasted text: the text, its tokens and score, and how it was written."""
    brief: Brief
    text: str
    ids: list[int] | None             # the scored tokens (None: tokenize the text)
    result: ScoredText | None         # with `top`, the alternatives' rows
    variant: str = "base"
    strength: float = 1.0
    template: str = "chat"
    sampler: Sampler = Sampler()
    guidance: float = 0.0
    notes: bool = True
    notice: str = ""


@dataclass(frozen=True)
class Suggestion:
    sentence: str          # the new sentence
    text: str              # the whole text with it in place
    score: dict            # the whole text's score (ScoredText.to_json())
    delta_I_per_token: float            # bits/token, against the text as it was
    delta_I_uncopied_per_token: float
    rank_score: float      # ranking.rank_score over the original text's length
    restates: bool         # ranking.restates: the copy guard

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def alternatives(engine: Engine, result: ScoredText, position, ids: list[int] | None = None,
                 sort: str = "p") -> list[alt.Alternative]:
    """The alternatives at a token of a scored text, from the rows its score already holds (no pass). `ids`: the
    text's tokens as written (a draft's sampled ids); None: the text's own tokenization (a pasted text)."""
    top = getattr(result, "top", None)
    n = result.score.n_tokens
    position = alt.check_position(position, n)
    if top is None:
        raise BadInput("this text's score kept no alternatives (a draft cut inside a token by a stop string): "
                       "score the text again to see them")
    written = (list(ids) if ids is not None else engine.tokenize_text(result.text))[position]
    texts = [engine.pieces([int(x)])[0][0] for x in top.ids[position]]
    a, b = result.offsets[position]
    s = result.score
    row = (result.text[a:b], -float(s.sY[position]) * surprise.LN2, -float(s.s0[position]) * surprise.LN2)
    rows = alt.panel(top, position, texts, result.text[:a], result.prompts.brief_text, written, row)
    return alt.sort(rows, sort)


def rewrite(engine: Engine, brief: Brief, sampler: Sampler, template: str, ids: list[int], position, token,
            guidance: float = 0.0, cancel: threading.Event | None = None) -> Iterator[Update]:
    """Write the draft again from token `position`, which becomes `token`: Continue from ids[:position] + [token]
    with the same settings; the new tokens' budget is what the draft had left (at least MIN_NEW_TOKENS). The kept
    tokens are a passage (a tuned model's notes are never among a score's tokens), so the model writes on from
    them as Continue does, without reasoning again."""
    ids = list(ids or [])
    if not ids:
        raise BadText("there is no draft to rewrite: write or paste one first")
    position = alt.check_position(position, len(ids))
    if isinstance(token, float) and token.is_integer():
        token = int(token)
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < engine.n_vocab:
        raise BadInput(f"token {token!r} is not a token id of this model (0 to {engine.n_vocab - 1}): take one "
                       "from the alternatives")
    prefix = ids[:position] + [token]
    left = max(sampler.max_tokens - len(prefix), MIN_NEW_TOKENS)
    yield from writer.write(engine, brief, dataclasses.replace(sampler, max_tokens=left), template, cancel,
                            prefix_ids=prefix, guidance=guidance, notes=True)


def splice(text: str, start: int, end: int, sentence: str) -> str:
    """The text with characters [start, end) replaced by `sentence`.

    >>> splice("It rained. The sea was blue. We left.", 11, 28, "The sea kept its colour.")
    'It rained. The sea kept its colour. We left.'
    """
    return text[:start] + sentence.strip() + text[end:]


def check_span(text: str, start, end) -> tuple[int, int]:
    """A sentence's characters from a user: inside the text and not blank, else one clear message."""
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        raise BadInput(f"sentence span {start!r}..{end!r} must be whole numbers (character offsets)")
    if not 0 <= start < end <= len(text):
        raise BadInput(f"sentence span {start}..{end} is outside the text ({len(text)} characters)")
    if not text[start:end].strip():
        raise BadText("the sentence is empty: choose a sentence with words in it")
    return start, end


def suggest(engine: Engine, brief: Brief, text: str, start: int, end: int, sampler: Sampler, template: str = "chat",
            n: int = 3, cancel: threading.Event | None = None, before: dict | None = None) -> list[Suggestion]:
    """Up to `n` rewrites of text[start:end] from the model (2n drafts, at most 8, written side by side with seeds
    s, s+1, ...; the first n distinct answers are kept), each scored in place (the whole text with it), best
    first by ranking.rank (I over uncopied tokens over the original text's length; restating drafts last).
    `before`: the text's score JSON when the caller has it (else it is scored here)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SUGGESTIONS:
        raise BadInput(f"suggestions: {n!r} must be a whole number from 1 to {MAX_SUGGESTIONS}")
    start, end = check_span(text, start, end)
    base = before or writer.score(engine, brief, text, template).to_json()
    sentence, n_sentences = text[start:end], max(len(weakspots.sentence_spans(text[start:end])), 1)
    fmt = engine.chat_formatter if template == "chat" else None
    gen = engine.tokenize_prompt(prompt(rewrite_message(brief, text[:start], sentence, text[end:]), fmt))
    if template == "chat":   # a tuned model would reason first: its passage, at once (as writer's notes=False)
        gen += engine.tokenize_text(f"{PASSAGE_HEADER}\n")
    budget = min(3 * len(engine.tokenize_text(sentence)) + 16, 160)
    lanes = min(n * SUGGEST_TRIES, MAX_LANES)   # written side by side: the prompt decoded once, one batch per step
    samplers = [dataclasses.replace(sampler, seed=sampler.seed + k, max_tokens=budget, stop=("\n",),
                                    temperature=max(sampler.temperature, SUGGEST_TEMPERATURE)) for k in range(lanes)]
    with engine.drafts(gen, samplers, cancel=cancel) as group:
        while group.active():
            group.step()
        raws = [run.finish().text for run in group.lanes]
    seen, found = {_norm(sentence)}, []
    for raw in raws:                             # the first n distinct answers, in seed order
        new = _first_sentences(raw, n_sentences, sentence)
        if new and _norm(new) not in seen and len(found) < n:
            seen.add(_norm(new))
            found.append(new)
    if not found:
        return []
    texts = [splice(text, start, end, x) for x in found]
    for t in texts:
        writer.check_lengths(brief, t)
    scored = [r.to_json() for r in scoring.score_texts(engine, brief, texts, template)]   # the prompts decoded once
    order = ranking.rank(scored, base["n_tokens"])
    return [Suggestion(found[i], scored[i]["text"], scored[i],
                       scored[i]["I_per_token"] - base["I_per_token"],
                       scored[i]["I_uncopied_per_token"] - base["I_uncopied_per_token"],
                       ranking.rank_score(scored[i], base["n_tokens"]), ranking.restates(scored[i]))
            for i in order]


def _first_sentences(raw: str, n: int, original: str) -> str:
    """The model's answer cut to as many sentences as it replaces; a label and, unless the original sentence is
    itself in quotes, wrapping quotes stripped.

    >>> _first_sentences('New sentence: "The sea kept its colour." Then we left.', 1, "The sea was blue.")
    'The sea kept its colour.'
    """
    s = raw.strip()
    for label in REWRITE_LABELS:
        if s.lower().startswith(label.lower()):
            s = s[len(label):].strip()
    spans = weakspots.sentence_spans(s)
    if spans:
        s = s[:spans[min(n, len(spans)) - 1][1]]
    if original.strip()[:1] not in QUOTES:
        s = s.strip(QUOTES)
    return s.strip()


def _norm(s: str) -> str:
    return " ".join(s.lower().split())
