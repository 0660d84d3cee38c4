"""The main job in one place: brief -> prompts -> twin-stream draft -> live score.

    >>> eng = Engine.load()                                               # doctest: +SKIP
    >>> for update in write(eng, Brief(task="Open a ghost story"), Sampler(seed=1)):  # doctest: +SKIP
    ...     print(update.text, update.result and update.result.score.I_per_token)

The draft and the readers of its score decode in lockstep (draft.DraftRun): every update can carry
the score so far, and the last one carries the final score without another pass. A CQA-tuned model
writes notes first: they are not scored; the readers start at its passage, under the brief alone
(the same prompts as /score), so a passage scores the same whether it was written or pasted.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Iterator

from .brief import NOTES_HEADER, PASSAGE_HEADER, Brief, BriefError, fit, split_notes
from .draft import Draft, DraftRun
from .engine import Engine, EngineError
from .errors import BadSampler, BadText
from .sampler import Sampler
from .scoring import ScoredText, from_logprobs, prompts_for, score_text

MAX_FIELD_CHARS = 20_000   # per brief field or pasted text; longer is a paste accident, not a brief
SCORE_CHARS_LIMIT = 40_000
LIVE_EVERY = 4             # tokens between two live scores (each costs ~1 ms per 100 tokens)
MARKER = f"{PASSAGE_HEADER}\n"


@dataclass
class Update:
    text: str                      # the draft so far (the passage, for a model that writes notes)
    done: bool = False
    result: ScoredText | None = None   # the score so far (live) or final; None before anything is scored
    notice: str = ""               # e.g. text_so_far was shortened to fit the context
    stop_reason: str = ""
    ids: list[int] | None = None   # the draft's tokens, for Continue
    notes: str = ""                # a CQA-tuned model's reasoning, shown apart from the passage
    guidance: float = 0.0          # the alpha that wrote it (the score is always the unguided readers')
    progress: str = ""             # e.g. "draft 2 of 4"
    ranked: list["Update"] | None = None   # best-of-N: every finished draft, best first (the first is this one)
    seed: int | None = None
    replica: int | None = None     # the process that wrote it (a Ray Serve replica's pid), for diagnostics


# Why a tuned model's draft holds notes but no passage yet, by how the draft ended.
NO_PASSAGE = {
    "length": "The model's notes used every token before the passage: Continue, or raise Max tokens.",
    "eos": "The model ended after its notes, before the passage: Regenerate (next seed) or Continue.",
    "stop": "A stop string ended the draft inside the notes, before the passage.",
    "cancelled": "Stopped inside the notes, before the passage: Continue to go on.",
}
HEADER_ADDED = "The model ended its turn after its notes: the app added the 'Passage:' line and the model wrote on."


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


@dataclass
class _Scored:
    """The scored part of a draft: tokens known before the run, then the run's tokens from `start` on."""
    known_ids: list[int] = field(default_factory=list)
    known_lp: list[float] = field(default_factory=list)
    known_lp0: list[float] = field(default_factory=list)
    start: int = 0                 # index into the run's draft.ids where live scoring began
    on: bool = False

    def arrays(self, d: Draft):
        s = self.start
        return (self.known_ids + d.ids[s:], self.known_lp + d.logprobs[s:], self.known_lp0 + d.logprobs0[s:])


class _Writer:
    """One draft: drives a DraftRun, decides when the readers start, yields Updates."""

    def __init__(self, engine: Engine, brief: Brief, sampler: Sampler, template: str, alpha: float,
                 prefix_ids: list[int], notes: bool):
        self.engine, self.sampler, self.template, self.alpha = engine, sampler, template, alpha
        self.prompts = prompts_for(engine, brief, template=template)
        self.cond_ids = engine.tokenize_prompt(self.prompts.conditional)
        self.uncond_ids = engine.tokenize_prompt(self.prompts.unconditional)
        self.prefix_ids = prefix_ids
        self.head = engine.pieces(prefix_ids)[2] if prefix_ids else ""
        self.skip_notes = not notes
        self.scored = _Scored()
        self.added = False
        self.phase = "start"   # start -> (notes -> header ->) passage

    def run(self, cancel, notice: str) -> Iterator[Update]:
        gen_ids = self.cond_ids + self.prefix_ids
        if self.skip_notes:   # the passage at once: the model writes under the header it was given
            gen_ids += self.engine.tokenize_text(MARKER)
        continuing = bool(self.prefix_ids) and self._phase_of_prefix() == "passage"
        with self.engine.draft(gen_ids, self.sampler, self.alpha, cancel=cancel,
                               n_known=len(self.prefix_ids) if continuing else 0) as run:
            self._open(run)
            n = 0
            while True:
                step = run.step()
                if step is None and self._add_header(run):
                    continue
                if step is None:
                    break
                self._advance(run)
                n += 1
                yield self._update(run, notice, live=n % LIVE_EVERY == 0)
            d = run.finish()
        yield from self._final(run, d, notice)

    # ---- when the readers start -----------------------------------------------------
    def _phase_of_prefix(self) -> str:
        notes, passage = split_notes(self.head)
        return "notes" if notes and not passage.strip() else "passage"

    def _open(self, run: DraftRun) -> None:
        if self.skip_notes:
            self._start_readers(run, [])
        elif self.prefix_ids and self._phase_of_prefix() == "notes":
            self.phase = "notes"                      # continuing inside the notes: nothing scored yet
        elif self.prefix_ids:                         # continuing a passage: the readers score it too
            self.phase = "passage"
            k = len(self.prefix_ids)
            cond_lp = list(run.known_logprobs)
            _, lp0 = run.score_with(None, self.uncond_ids + self.prefix_ids, n_known=k)
            self.scored = _Scored(list(self.prefix_ids), cond_lp, lp0, start=0, on=True)
        else:
            run.score_with(None, self.uncond_ids)   # a twin stream, unless the draft turns out to be notes
            self.scored = _Scored(on=True)

    def _start_readers(self, run: DraftRun, passage_ids: list[int]) -> None:
        """Readers under the brief alone, for a passage that follows notes: its first tokens re-read."""
        lp, lp0 = run.score_with(self.cond_ids + passage_ids, self.uncond_ids + passage_ids, n_known=len(passage_ids))
        self.scored = _Scored(list(passage_ids), lp, lp0, start=len(run.draft.ids), on=True)
        self.phase = "passage"

    def _advance(self, run: DraftRun) -> None:
        text = self.head + run.draft.text
        if self.phase == "start":
            body = text.lstrip()
            if body.startswith(NOTES_HEADER):
                run.stop_scoring()
                self.scored, self.phase = _Scored(), "notes"
            elif not NOTES_HEADER.startswith(body):
                self.phase = "passage"
        if self.phase in ("notes", "header") and MARKER in text:
            passage = text.partition(MARKER)[2].lstrip()
            self.phase = "header"
            if passage:
                self._start_readers(run, self.engine.tokenize_text(passage))

    def _add_header(self, run: DraftRun) -> bool:
        """The model ended its turn after its notes: add "Passage:" and let it write on (once)."""
        d = run.draft
        text = self.head + d.text
        if d.stop_reason != "eos" or self.phase != "notes" or self.added or MARKER in text:
            return False
        header = ("\n" if text.endswith("\n") else "\n\n") + MARKER
        try:
            run.feed(self.engine.tokenize_text(header))
        except EngineError:
            return False
        d.stop_reason, d.exact, self.added = "", False, True
        self.phase = "header"
        return True

    # ---- updates -----------------------------------------------------------------------
    def _split(self, run: DraftRun) -> tuple[str, str]:
        text = self.head + run.draft.text
        if self.skip_notes:
            return "", text
        notes, passage = split_notes(text)
        return (notes, passage) if notes else ("", text)

    def _result(self, run: DraftRun) -> ScoredText | None:
        ids, lp, lp0 = self.scored.arrays(run.draft)
        if not self.scored.on or not ids:
            return None
        return from_logprobs(self.engine, self.prompts, ids, lp, lp0, self.template)

    def _update(self, run: DraftRun, notice: str, live: bool) -> Update:
        notes, passage = self._split(run)
        shown = passage if (notes or self.skip_notes) and self.phase == "passage" else self.head + run.draft.text
        return Update(shown, notice=notice, result=self._result(run) if live else None, notes=notes,
                      guidance=self.alpha)

    def _final(self, run: DraftRun, d: Draft, notice: str) -> Iterator[Update]:
        if self.added:
            notice = (notice + " " + HEADER_ADDED).strip()
        notes, passage = self._split(run)
        end = dict(done=True, stop_reason=d.stop_reason, guidance=self.alpha)
        if notes and self.phase != "passage":   # no passage yet: the notes stay in the draft, Continue goes on
            why = NO_PASSAGE.get(d.stop_reason, NO_PASSAGE["length"])
            yield Update(self.head + d.text, ids=self.prefix_ids + d.ids, notice=(notice + " " + why).strip(), **end)
            return
        end["notes"] = notes
        ids = self.scored.arrays(d)[0]
        if not ids:
            why = "" if d.stop_reason == "cancelled" else (" The model ended the draft at once: try another "
                                                            "seed or a higher temperature.")
            yield Update(self.head + d.text, ids=list(self.prefix_ids), notice=(notice + why).strip(), **end)
            return
        if not d.exact and d.stop_reason == "stop":   # a stop string cut a token in two: score what is visible
            text = passage if notes else self.head + d.text
            result = self._rescore(text)
            yield Update(result.text, result=result, notice=notice, ids=None, **end)
            return
        result = self._result(run)
        yield Update(result.text, result=result, notice=notice, ids=ids, **end)

    def _rescore(self, text: str) -> ScoredText:
        cond, uncond = self.engine.token_logprobs_pair(self.prompts.conditional, self.prompts.unconditional,
                                                       self.engine.tokenize_text(text))
        return from_logprobs(self.engine, self.prompts, cond.ids, cond.logprobs, uncond.logprobs, self.template)


def write(engine: Engine, brief: Brief, sampler: Sampler, template: str = "chat",
          cancel: threading.Event | None = None, prefix_ids: list[int] | None = None,
          guidance: float = 0.0, notes: bool = True) -> Iterator[Update]:
    """Stream a draft (or continue `prefix_ids`) with its live score. Raises BriefError/EngineError early.

    `guidance`: brief guidance alpha (0 = plain sampling). `notes`: let a CQA model reason first
    (False: its passage at once, under the 'Passage:' header).
    """
    check_lengths(brief)
    if brief.is_empty():
        raise BriefError("the brief is empty: say at least what to write (task) or paste the text so far")
    prefix_ids = list(prefix_ids or [])
    brief_used, notice = fit_brief(engine, brief, sampler, template, reserve=len(prefix_ids))
    w = _Writer(engine, brief_used, sampler, template, guidance, prefix_ids, notes)
    yield Update(w.head, notice=notice, guidance=guidance)
    yield from w.run(cancel, notice)


MAX_DRAFTS = 8


def best_of(engine: Engine, brief: Brief, sampler: Sampler, n: int, template: str = "chat",
            cancel: threading.Event | None = None, guidance: float = 0.0, notes: bool = True) -> Iterator[Update]:
    """N drafts of one brief (seeds s, s+1, ...), each streamed with its live score and a progress line, then
    the last update: the best by `ranking.rank` with `ranked` holding every finished draft, best first.
    Stop (cancel) ends the batch and keeps the drafts already finished."""
    from . import ranking

    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_DRAFTS:
        raise BadSampler(f"drafts: {n!r} must be a whole number from 1 to {MAX_DRAFTS}")
    finished: list[Update] = []
    for k in range(n):
        if cancel is not None and cancel.is_set():
            break
        s = dataclasses.replace(sampler, seed=sampler.seed + k)
        progress = f"draft {k + 1} of {n}"
        last = None
        for u in write(engine, brief, s, template, cancel, guidance=guidance, notes=notes):
            u.progress, u.seed = progress, s.seed
            last = u
            if not u.done:
                yield u
        if last is not None and (last.stop_reason != "cancelled" or k == 0 or last.result is not None):
            finished.append(last)
    order = ranking.rank([u.result.to_json() if u.result else None for u in finished], sampler.max_tokens)
    ranked = [finished[i] for i in order]
    if not ranked:
        return
    best = dataclasses.replace(ranked[0], ranked=ranked, progress=f"{len(ranked)} of {n} drafts, best first")
    yield best


def complete(engine: Engine, brief: Brief, sampler: Sampler, template: str = "chat", **kw) -> Update:
    """`write` run to its end, for scripts: the final Update."""
    last = None
    for last in write(engine, brief, sampler, template, **kw):
        continue
    return last


def score(engine: Engine, brief: Brief, text: str, template: str = "chat") -> ScoredText:
    """Score pasted text under a brief (one batched decode of both readers)."""
    check_lengths(brief, text)
    if not text.strip():
        raise BadText("there is no text to score: paste a passage first")
    if brief.is_empty():  # with no brief both passes are the same prompt: I would be 0 for any text
        raise BriefError("the brief is empty: fill in at least the task, so the score can measure "
                         "how much the brief explains the text")
    return score_text(engine, brief, text, template=template)
