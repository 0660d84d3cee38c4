"""The main job in one place: brief -> prompt -> streamed draft -> score.

    >>> eng = Engine.load()                                               # doctest: +SKIP
    >>> for update in write(eng, Brief(task="Open a ghost story"), Sampler(seed=1)):  # doctest: +SKIP
    ...     print(update.text)

Each update carries the draft so far; the last one carries the score (one extra
pass: the conditional log-probs come from the generation itself).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Iterator

from .brief import PASSAGE_HEADER, Brief, BriefError, fit, split_notes
from .engine import Draft, Engine, EngineError
from .sampler import Sampler
from .scoring import ScoredText, prompts_for, score_generated, score_text

MAX_FIELD_CHARS = 20_000   # per brief field or pasted text; longer is a paste accident, not a brief
SCORE_CHARS_LIMIT = 40_000


@dataclass
class Update:
    text: str                      # the draft so far (with the continued part, for Continue)
    done: bool = False
    result: ScoredText | None = None
    notice: str = ""               # e.g. text_so_far was shortened to fit the context
    stop_reason: str = ""
    ids: list[int] | None = None   # the draft's tokens, for Continue
    logprobs: list[float] | None = None
    notes: str = ""                # a CQA-tuned model's reasoning, shown apart from the passage


def stream_draft(engine: Engine, prompt: str, sampler: Sampler, draft: Draft,
                 cancel: threading.Event | None = None, prefix_ids: list[int] | None = None) -> Iterator[str]:
    """`engine.stream`, yielding the draft text so far (after `prefix_ids`); fills `draft`.

    A CQA-tuned model writes notes, then "Passage:", then the passage. When it ends its turn after
    the notes instead (13 of 48 drafts on the held-out briefs), the "Passage:" line is added here and
    the model goes on within the same Max tokens. Returns True when it was added: the draft's
    log-probs then stop at the notes (`draft.exact` is False) and the passage is scored afresh.
    """
    prefix_ids = list(prefix_ids or [])
    for _ in engine.stream(prompt, sampler, draft, cancel=cancel, prefix_ids=prefix_ids):
        yield draft.text
    so_far = (engine.pieces(prefix_ids)[2] if prefix_ids else "") + draft.text
    notes, passage = split_notes(so_far)
    if draft.stop_reason != "eos" or not notes or passage.strip() or f"{PASSAGE_HEADER}\n" in so_far:
        return False
    header = ("\n" if so_far.endswith("\n") else "\n\n") + PASSAGE_HEADER + "\n"
    header_ids = engine.tokenize_text(header)
    left = sampler.max_tokens - len(draft.ids) - len(header_ids)
    if left < 1:
        return False
    first_ids, first_text = list(draft.ids), draft.text
    more = Draft()
    for _ in engine.stream(prompt, dataclasses.replace(sampler, max_tokens=left), more, cancel=cancel,
                           prefix_ids=prefix_ids + first_ids + header_ids):
        yield first_text + header + more.text
    draft.ids, draft.text = first_ids + header_ids + more.ids, first_text + header + more.text
    draft.stop_reason, draft.exact = more.stop_reason, False
    return True


def _updates(texts: Iterator[str], head: str, notice: str) -> Iterator[Update]:
    """Texts so far -> Updates; returns what the text generator returns."""
    while True:
        try:
            text = next(texts)
        except StopIteration as end:
            return end.value
        yield Update(head + text, notice=notice)


def complete_draft(engine: Engine, prompt: str, sampler: Sampler) -> tuple[Draft, bool]:
    """`stream_draft` run to its end, for scripts: (the draft, whether "Passage:" was added)."""
    draft = Draft()
    updates = _updates(stream_draft(engine, prompt, sampler, draft), "", "")
    while True:
        try:
            next(updates)
        except StopIteration as end:
            return draft, bool(end.value)


# Why a tuned model's draft holds notes but no passage yet, by how the draft ended.
NO_PASSAGE = {
    "length": "The model's notes used every token before the passage: Continue, or raise Max tokens.",
    "eos": "The model ended after its notes, before the passage: Regenerate (next seed) or Continue.",
    "stop": "A stop string ended the draft inside the notes, before the passage.",
    "cancelled": "Stopped inside the notes, before the passage: Continue to go on.",
}


def check_lengths(brief: Brief, text: str = "") -> None:
    problems = [f"{k} is {len(v):,} characters (at most {MAX_FIELD_CHARS:,})"
                for k, v in brief.to_dict().items() if len(v) > MAX_FIELD_CHARS]
    if len(text) > SCORE_CHARS_LIMIT:
        problems.append(f"the text is {len(text):,} characters (at most {SCORE_CHARS_LIMIT:,})")
    if problems:
        raise BriefError("too long: " + "; ".join(problems))


def fit_brief(engine: Engine, brief: Brief, sampler: Sampler, template: str,
              reserve: int = 0) -> tuple[Brief, str]:
    """Shorten text_so_far (oldest words first) so prompt + max_tokens + reserve fit the context."""
    budget = engine.n_ctx - min(sampler.max_tokens, engine.n_ctx // 2) - reserve
    count = lambda b: engine.count_tokens(prompts_for(engine, b, template=template).conditional)  # noqa: E731
    return fit(brief, budget, count)


def write(engine: Engine, brief: Brief, sampler: Sampler, template: str = "chat",
          cancel: threading.Event | None = None, prefix_ids: list[int] | None = None,
          prefix_logprobs: list[float] | None = None) -> Iterator[Update]:
    """Stream a draft (or continue `prefix_ids`), then score it. Raises BriefError/EngineError early."""
    check_lengths(brief)
    if brief.is_empty():
        raise BriefError("the brief is empty: say at least what to write (task) or paste the text so far")
    prefix_ids = list(prefix_ids or [])
    brief_used, notice = fit_brief(engine, brief, sampler, template, reserve=len(prefix_ids))
    prompts = prompts_for(engine, brief_used, template=template)
    draft = Draft()
    head = engine.pieces(prefix_ids)[2] if prefix_ids else ""
    yield Update(head, notice=notice)
    added = yield from _updates(stream_draft(engine, prompts.conditional, sampler, draft, cancel, prefix_ids),
                                head, notice)
    if added:
        notice = (notice + " The model ended its turn after its notes: the app added the 'Passage:' line and "
                  "the model wrote on.").strip()
    ids = prefix_ids + draft.ids
    if not ids:
        why = "" if draft.stop_reason == "cancelled" else (" The model ended the draft at once: try another "
                                                            "seed or a higher temperature.")
        yield Update(head, done=True, notice=(notice + why).strip(),
                     stop_reason=draft.stop_reason, ids=[], logprobs=[])
        return
    notes, passage = split_notes(head + draft.text)
    if notes:  # a tuned model reasoned first: the passage alone is the draft, scored under the brief only
        if not passage.strip():  # no passage yet: the notes stay in the draft, so Continue can go on
            if added:
                logprobs = None   # the added header was not sampled: Continue re-reads the draft
            elif prefix_logprobs is not None:
                logprobs = list(prefix_logprobs) + draft.logprobs
            else:
                logprobs = None if prefix_ids else list(draft.logprobs)
            yield Update(head + draft.text, done=True, stop_reason=draft.stop_reason, ids=prefix_ids + draft.ids,
                         logprobs=logprobs,
                         notice=(notice + " " + NO_PASSAGE.get(draft.stop_reason, NO_PASSAGE["length"])).strip())
            return
        result = score_text(engine, brief_used, passage, template=template)
        yield Update(result.text, done=True, result=result, notice=notice, stop_reason=draft.stop_reason,
                     notes=notes)
        return
    if not draft.exact:  # a stop string cut a token in two: score the visible text, two passes
        result = score_text(engine, brief_used, head + draft.text, template=template)
        yield Update(result.text, done=True, result=result, notice=notice, stop_reason=draft.stop_reason,
                     ids=None, logprobs=None)
        return
    if prefix_ids and prefix_logprobs is not None and len(prefix_logprobs) == len(prefix_ids):
        logprobs = list(prefix_logprobs) + draft.logprobs   # continuing a draft we generated: still exact
        result = score_generated(engine, brief_used, ids, logprobs, template)
    elif prefix_ids:
        result = score_text(engine, brief_used, engine.pieces(ids)[2], template=template, ids=ids)
        logprobs = None
    else:
        logprobs = draft.logprobs
        result = score_generated(engine, brief_used, ids, logprobs, template)
    yield Update(result.text, done=True, result=result, notice=notice, stop_reason=draft.stop_reason,
                 ids=ids, logprobs=logprobs)


def score(engine: Engine, brief: Brief, text: str, template: str = "chat") -> ScoredText:
    """Score pasted text under a brief (two passes)."""
    check_lengths(brief, text)
    if not text.strip():
        raise EngineError("there is no text to score: paste a passage first")
    if brief.is_empty():  # with no brief both passes are the same prompt: I would be 0 for any text
        raise BriefError("the brief is empty: fill in at least the task, so the score can measure "
                         "how much the brief explains the text")
    return score_text(engine, brief, text, template=template)
