"""The main job in one place: brief -> prompts -> twin-stream draft -> live score.

    >>> eng = Engine.load()                                               # doctest: +SKIP
    >>> for update in write(eng, Brief(task="Open a ghost story"), Sampler(seed=1)):  # doctest: +SKIP
    ...     print(update.text, update.result and update.result.score.I_per_token)

The draft and the readers of its score decode in lockstep (draft.DraftRun): every update can carry
the score so far, and the last one carries the final score without another pass. A CQA-tuned model
writes notes first: they are not scored; the readers start at its passage, under the brief alone
(the same prompts as /score), so a passage scores the same whether it was written or pasted. Best of
N writes its drafts side by side (assistant/lockstep.py: the prompt once, one batch per step).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Iterator

from .brief import NOTES_HEADER, PASSAGE_HEADER, Brief, BriefError, fit, split_notes
from .draft import MAX_LANES as MAX_DRAFTS, Draft, DraftRun, Known
from .engine import Engine, EngineError
from .errors import BadSampler, BadText
from .lockstep import waves
from .logits import TopK
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
    known: Known = field(default_factory=lambda: Known([], [], None))
    start: int = 0                 # index into the run's draft.ids where live scoring began
    on: bool = False

    def arrays(self, d: Draft):
        s = self.start
        return (self.known_ids + d.ids[s:], self.known.lp + d.logprobs[s:], self.known.lp0 + d.logprobs0[s:])

    def top(self, d: Draft) -> TopK | None:
        mine = d.top(self.start)
        return mine if self.known.top is None else self.known.top.concat(mine)


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
        self.n = 0             # tokens written (a live score every LIVE_EVERY)

    def gen_ids(self) -> tuple[list[int], int]:
        """The sampling sequence's prompt (brief prompt + text already written), and how many of its last tokens
        are a passage already written (read by the readers too)."""
        # the passage at once: the model writes (or goes on) under the header it was given
        header = self.engine.tokenize_text(MARKER) if self.skip_notes else []
        continuing = bool(self.prefix_ids) and (self.skip_notes or self._phase_of_prefix() == "passage")
        return self.cond_ids + header + self.prefix_ids, len(self.prefix_ids) if continuing else 0

    def on_step(self, run: DraftRun, step, notice: str) -> Update | None:
        """After a step of this draft: its update, or None when it ended (unless the header was added)."""
        if step is None:
            self._add_header(run)     # the model ended after its notes: "Passage:" added, the draft goes on
            return None
        self._advance(run)
        self.n += 1
        return self._update(run, notice, live=self.n % LIVE_EVERY == 0)

    # ---- when the readers start -----------------------------------------------------
    def _phase_of_prefix(self) -> str:
        notes, passage = split_notes(self.head)
        return "notes" if notes and not passage.strip() else "passage"

    def _open(self, run: DraftRun) -> None:
        if self.skip_notes:                           # the readers read the passage so far, under the brief alone
            self._start_readers(run, list(self.prefix_ids))
        elif self.prefix_ids and self._phase_of_prefix() == "notes":
            self.phase = "notes"                      # continuing inside the notes: nothing scored yet
        elif self.prefix_ids:                         # continuing a passage: the readers score it too
            self.phase = "passage"
            k = len(self.prefix_ids)
            known = run.score_with(None, self.uncond_ids + self.prefix_ids, n_known=k)
            self.scored = _Scored(list(self.prefix_ids), known, start=0, on=True)
        else:
            run.score_with(None, self.uncond_ids)   # a twin stream, unless the draft turns out to be notes
            self.scored = _Scored(on=True)

    def _start_readers(self, run: DraftRun, passage_ids: list[int]) -> None:
        """Readers under the brief alone, for a passage that follows notes: its first tokens re-read."""
        known = run.score_with(self.cond_ids + passage_ids, self.uncond_ids + passage_ids, n_known=len(passage_ids))
        self.scored = _Scored(list(passage_ids), known, start=len(run.draft.ids), on=True)
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
        if not self.scored.on or not self.scored.arrays(run.draft)[0]:
            return None
        run.sync()      # the lazy unconditional reader catches up
        ids, lp, lp0 = self.scored.arrays(run.draft)
        return from_logprobs(self.engine, self.prompts, ids, lp, lp0, self.template, top=self.scored.top(run.draft))

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
        return from_logprobs(self.engine, self.prompts, cond.ids, cond.logprobs, uncond.logprobs, self.template,
                             top=TopK(cond.top_ids, cond.top_lp, uncond.top_lp))


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
    for _, u in _side_by_side(engine, [w], [sampler], cancel, notice):
        yield u


def _side_by_side(engine: Engine, writers: list[_Writer], samplers: list[Sampler], cancel,
                  notice: str) -> Iterator[tuple[int, Update]]:
    """Drive one draft per writer in one Lockstep (the prompt decoded once, one batch per step); yields (which
    draft, its update) as they grow, then each draft's final update."""
    w0 = writers[0]
    gen_ids, n_known = w0.gen_ids()
    with engine.drafts(gen_ids, samplers, w0.alpha, cancel=cancel, n_known=n_known, lazy_every=LIVE_EVERY) as group:
        for w, run in zip(writers, group.lanes):
            w._open(run)
        while group.active():
            for run, step in group.step():
                u = writers[run.index].on_step(run, step, notice)
                if u is not None:
                    yield run.index, u
        for w, run in zip(writers, group.lanes):
            run.finish()
    for i, (w, run) in enumerate(zip(writers, group.lanes)):
        for u in w._final(run, run.draft, notice):
            yield i, u


def best_of(engine: Engine, brief: Brief, sampler: Sampler, n: int, template: str = "chat",
            cancel: threading.Event | None = None, guidance: float = 0.0, notes: bool = True) -> Iterator[Update]:
    """N drafts of one brief (seeds s, s+1, ...) written side by side (the prompt decoded once, one batch per
    step), streamed as the leading draft with a progress line that gives every draft's live ranking score;
    then the last update: the best by `ranking.rank`, with `ranked` holding every draft, best first. Stop
    (cancel) ends every draft where it is: the drafts are kept, scored and ranked as they stand."""
    from . import ranking

    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_DRAFTS:
        raise BadSampler(f"drafts: {n!r} must be a whole number from 1 to {MAX_DRAFTS}")
    check_lengths(brief)
    if brief.is_empty():
        raise BriefError("the brief is empty: say at least what to write (task) or paste the text so far")
    samplers = [dataclasses.replace(sampler, seed=sampler.seed + k) for k in range(n)]
    finished: list[Update | None] = [None] * n
    brief_used, notice = fit_brief(engine, brief, sampler, template)
    for wave in _waves(engine, brief_used, sampler, template, n, notes):
        writers = [_Writer(engine, brief_used, samplers[k], template, guidance, [], notes) for k in wave]
        live, latest = {}, {}    # draft -> its live ranking score; its last update
        for i, u in _side_by_side(engine, writers, [samplers[k] for k in wave], cancel, notice):
            k = wave[i]
            u.seed = samplers[k].seed
            if u.done:
                finished[k] = u
                continue
            latest[k] = u
            if u.result is not None:
                live[k] = ranking.rank_score(u.result.to_json(), sampler.max_tokens)
            lead = max(live, key=live.get) if live else min(latest)
            if k == lead:
                u.progress = _progress(n, wave, live, lead)
                yield u
    done = [u for u in finished if u is not None and (u.result is not None or u.stop_reason != "cancelled")]
    order = ranking.rank([u.result.to_json() if u.result else None for u in done], sampler.max_tokens)
    ranked = [done[i] for i in order]
    if not ranked:
        return
    yield dataclasses.replace(ranked[0], ranked=ranked, progress=f"{len(ranked)} of {n} drafts, best first")


def _progress(n: int, wave: list[int], live: dict[int, float], lead: int) -> str:
    """'4 drafts side by side (draft 2 shown, the leader; live scores 0.31, 0.42, –, 0.12)'."""
    part = f"drafts {wave[0] + 1}-{wave[-1] + 1} of {n}" if len(wave) < n else f"{n} drafts side by side"
    return f"{part} (draft {lead + 1} shown, the leader; live scores " + \
        ", ".join(f"{live[k]:.2f}" if k in live else "–" for k in wave) + ")"


def _waves(engine: Engine, brief: Brief, sampler: Sampler, template: str, n: int, notes: bool) -> list[list[int]]:
    """Drafts 0..n-1 in groups whose sequences fit the context's cells together (lockstep.waves)."""
    prompts = prompts_for(engine, brief, template=template)
    p, p0 = engine.count_tokens(prompts.conditional), engine.count_tokens(prompts.unconditional)
    m = min(sampler.max_tokens, engine.n_ctx)
    # a draft takes max_tokens in its own sequence and in its unconditional reader; reasoning first, its
    # passage's readers read both prompts again
    return waves(n, engine.n_cells - p - p0, (3 * m + p + p0) if notes else 2 * m)


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
