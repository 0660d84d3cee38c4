"""Several drafts of one prompt written side by side: the prompt decoded once, then one batch per step.

    >>> with engine.drafts(prompt_ids, [Sampler(seed=s) for s in range(4)]) as group:   # doctest: +SKIP
    ...     for run in group.lanes: run.score_with(None, uncond_ids)    # the readers' prompt: decoded once too
    ...     while group.active(): group.step()                            # 4 drafts and 4 readers, one batch
    ...     drafts = [run.finish() for run in group.lanes]

The prompt is decoded into the first draft's sequence and its KV cells are shared with the others
(llama.cpp's memory seq_cp: a copy costs no compute and no cells), and so is a reader's prompt that
several drafts start with. Each step then samples one token per live draft (each with its own seeded
sampler chain) and decodes every live sequence of every draft in one llama_decode. On kernels whose
cost grows slowly with the batch (see bench/engine.py), N drafts cost far less than N times one.

The same seed and N give the same N drafts every time. A lane's numbers are not those of the same seed
written alone: a batch of several rows runs other kernels than a single row (kernel noise, ~0.05 nats).
"""
from __future__ import annotations

import contextlib

import numpy as np

from .draft import GEN, MAX_LANES, SEQS_PER_DRAFT, UNCOND, DraftModel, DraftRun, Step, _read
from .errors import EngineFailure
from .llama import LlamaError
from .sampler import Sampler


class Lockstep:
    """N drafts (lanes) of one prompt under one hold of the model's context."""

    def __init__(self, engine: DraftModel, gen_ids: list[int], samplers: list[Sampler], alpha: float, beta: float,
                 cancel=None, n_known: int = 0, lazy_every: int = 0):
        if not 1 <= len(samplers) <= MAX_LANES:
            raise EngineFailure(f"{len(samplers)} drafts at once: at most {MAX_LANES}")
        self.engine, self.cancel = engine, cancel
        self._gen_prompt, self._n_known = list(gen_ids), n_known
        self._args = (alpha, beta, lazy_every)
        self._samplers = samplers
        self.lanes: list[DraftRun] = []
        self._shared: dict[tuple, tuple[set[int], list[np.ndarray]]] = {}   # (seq, prompt, n_known) -> holders, rows

    def __enter__(self) -> "Lockstep":
        self._held = contextlib.ExitStack()
        try:
            self.context = self._held.enter_context(self.engine.hold())
            self.lanes = [DraftRun(self, i, s, *self._args) for i, s in enumerate(self._samplers)]
            for run in self.lanes:
                rows = run._prefill(GEN, self._gen_prompt, self._n_known)
                run.known_logprobs, run.known_top = _read(rows, self._gen_prompt[len(self._gen_prompt) - self._n_known:]) \
                    if self._n_known else ([], None)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for run in self.lanes:
            run.close()
        self._held.close()    # empties the context and releases the model's lock

    # ---- cells -----------------------------------------------------------------
    def room(self, extra: int = 0) -> bool:
        """Do the live sequences and `extra` more cells fit? A prompt shared by k sequences sits in its cells
        once (seq_cp shares cells), so it is counted once."""
        used = sum(p for run in self.lanes for p in run._pos.values()) + sum(len(r._pending) for r in self.lanes)
        shared = sum(len(key[1]) * (len(holders) - 1) for key, (holders, _) in self._shared.items() if holders)
        return used - shared + extra <= self.context.n_cells

    # ---- decoding ----------------------------------------------------------------
    def decode(self, entries) -> dict[int, list[np.ndarray]]:
        """Decode (token, position, global sequence, want) entries; per global sequence its wanted rows (copies).
        Each lane's last row per sequence becomes the row predicting its next token."""
        got: dict[int, list[np.ndarray]] = {}
        try:
            for idx, rows in self.context.decode(entries):
                for r, i in enumerate(idx):
                    got.setdefault(entries[i][2], []).append(rows[r].copy())
        except LlamaError as e:
            raise EngineFailure(str(e)) from e
        for seq, rows in got.items():
            self.lanes[seq // SEQS_PER_DRAFT]._rows[seq % SEQS_PER_DRAFT] = rows[-1]
        return got

    def prefill(self, run: DraftRun, seq: int, ids: list[int], n_known: int) -> list[np.ndarray]:
        """Decode a prompt into a lane's sequence, or share the cells of a sequence that holds the same prompt in
        the same role; the rows that predicted its last `n_known` tokens."""
        key = (seq, tuple(ids), n_known)
        dst = run.base + seq
        holders, rows = self._shared.get(key, (set(), []))
        if holders:
            src = min(holders)
            self.context.copy_sequence(src, dst, 0, len(ids))
        else:
            first = len(ids) - 1 - n_known
            rows = self.decode([(t, p, dst, p >= first) for p, t in enumerate(ids)]).get(dst, [])
        run._rows[seq] = rows[-1].copy()
        self._shared[key] = (holders | {dst}, rows)
        return rows[:-1]

    def forget(self, seq: int) -> None:
        """A sequence was emptied: it no longer holds (or lends) the prompts it had."""
        for holders, _ in self._shared.values():
            holders.discard(seq)

    # ---- steps ---------------------------------------------------------------------
    def active(self) -> bool:
        return any(run.active for run in self.lanes)

    def step(self) -> list[tuple[DraftRun, Step | None]]:
        """One token for every live draft, all decoded in one batch: (draft, its step or None when it ended
        here) for each draft that was live at the start of the step."""
        live = [run for run in self.lanes if run.active]
        if not self.room(sum(len(run._pos) for run in live)):
            for run in live:
                run.draft.stop_reason = "length"
            return [(run, None) for run in live]
        chosen = [(run, run.begin()) for run in live]
        planned = [(run, run.plan([tok])) for run, tok in chosen if tok is not None]
        got = self.decode([e for _, entries in planned for e in entries]) if planned else {}
        steps = {}
        for run, _ in planned:
            (step,) = run.absorb(run._local(got))
            steps[run.index] = step if run.end() else None
        return [(run, steps.get(run.index)) for run, _ in chosen]

    def step_one(self, run: DraftRun) -> Step | None:
        """`step()` for a lone draft."""
        if len(self.lanes) != 1:
            raise EngineFailure("step the Lockstep: it holds several drafts")
        if not run.active:
            return None
        ((_, step),) = self.step()
        return step

    def sync(self, lanes: list[DraftRun] | None = None) -> None:
        """The lazy readers of these lanes (all: None) catch up, in one batch."""
        waiting = [run for run in (self.lanes if lanes is None else lanes) if run._pending]
        if not waiting:
            return
        entries = [e for run in waiting for e in run._flush_entries()]
        got = self.decode(entries)
        for run in waiting:
            run._filled(run._local(got).get(UNCOND, []))


def waves(n: int, cells: int, per_draft: int) -> list[list[int]]:
    """Drafts 0..n-1 in groups of at most MAX_LANES that fit `cells` at `per_draft` cells each.

    >>> waves(4, 4000, 400), waves(3, 1000, 600), waves(9, 10 ** 6, 1)
    ([[0, 1, 2, 3]], [[0], [1], [2]], [[0, 1, 2, 3, 4, 5, 6, 7], [8]])
    """
    size = max(1, min(MAX_LANES, cells // max(per_draft, 1)))
    return [list(range(a, min(a + size, n))) for a in range(0, n, size)]
