"""A draft being written: the sampling sequence and the readers of its score, decoded in lockstep.

    >>> with engine.draft(engine.tokenize_prompt(prompts.conditional), Sampler(seed=1)) as run:   # doctest: +SKIP
    ...     run.score_with(None, engine.tokenize_prompt(prompts.unconditional))                    # a twin stream
    ...     while (step := run.step()) is not None: print(step.piece, step.logprob, step.logprob0)

Up to three sequences, one batch per step: the one the model samples from (prompt + draft) and the
two readers of the score, conditional (brief prompt + scored text) and unconditional (neutral prompt
+ scored text). When the scored text is the whole draft, the sampling sequence is the conditional
reader itself (a twin stream: two sequences). The readers can start mid-draft, which is how a tuned
model's passage is scored apart from its notes. Guidance (assistant/guidance.py) tilts the sampled
row; the log-probs recorded are always the unguided readers'.
"""
from __future__ import annotations

import codecs
import contextlib
import math
from dataclasses import dataclass, field
from typing import ContextManager, Protocol

import numpy as np

from . import guidance
from .errors import EngineFailure
from .llama import Context, LlamaError, SamplerChain
from .logits import logprob_of as _lp
from .sampler import Sampler

GEN, COND, UNCOND = 0, 1, 2   # the draft's sequence ids: the sampling sequence and the two readers
N_SEQUENCES = 3               # sequences a draft may decode at once (the context must hold this many)


class DraftModel(Protocol):
    """What a draft needs of the engine: the prepared context under its lock, and the vocabulary."""
    n_ctx: int
    n_vocab: int

    def hold(self) -> ContextManager[Context]:
        """The model's lock and its context, emptied, with the variant's adapter state set."""

    def piece(self, token: int) -> bytes: ...

    def pieces(self, ids: list[int]) -> tuple[list[str], list[tuple[int, int]], str]: ...

    def is_end(self, token: int) -> bool: ...


@dataclass
class Step:
    """One token of a draft (sampled, or fed), with what the readers made of it."""
    id: int
    piece: str
    logprob: float            # natural log, conditional reader (the sampling sequence when it is the reader)
    logprob0: float = math.nan   # natural log, unconditional reader; nan while no reader scores


@dataclass
class Draft:
    """What a draft leaves behind: its tokens, text and how it ended."""
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    logprobs0: list[float] = field(default_factory=list)
    text: str = ""
    stop_reason: str = ""   # "eos", "stop", "length", "cancelled"
    exact: bool = True      # text == detokenized ids (a stop string can cut a token in two)



class DraftRun:
    """One draft being written; holds the model's lock from `with` to its end.

    `step()` samples a token (guided when alpha > 0 and an unconditional reader runs) and decodes it in
    every sequence at once; `feed(ids)` appends tokens that were not sampled; `score_with(cond, uncond)`
    starts the readers of the score (cond None: the sampling sequence reads for Y).
    """

    def __init__(self, engine: DraftModel, gen_ids: list[int], sampler: Sampler, alpha: float, beta: float, cancel,
                 n_known: int = 0):
        self.engine, self.sampler, self.alpha, self.beta, self.cancel = engine, sampler, alpha, beta, cancel
        self._gen_prompt = gen_ids
        self.draft = Draft()
        self.n_new = 0              # tokens sampled or fed since the prompt (max_tokens counts them)
        self._n_known = n_known
        self.known_logprobs: list[float] = []   # log-probs of gen_ids' last n_known tokens
        self._pos = {}              # sequence -> next position
        self._rows: dict[int, np.ndarray] = {}   # sequence -> logits predicting its next token (a copy)
        self._reader_cond: int | None = None     # None: no readers; GEN or COND: who reads for Y
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._chain = None

    def __enter__(self) -> "DraftRun":
        self._held = contextlib.ExitStack()
        try:
            self._context = self._held.enter_context(self.engine.hold())
            s = self.sampler
            self._chain = SamplerChain(self.engine.n_vocab, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                       min_p=s.min_p, repeat_penalty=s.repeat_penalty, seed=s.seed)
            self.known_logprobs = self._prefill({GEN: self._gen_prompt}, self._n_known)[GEN].tolist()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._chain is not None:
            self._chain.close()
            self._chain = None
        self._held.close()    # empties the context and releases the model's lock

    # ---- sequences -------------------------------------------------------------
    def _cells_used(self) -> int:
        return sum(self._pos.values())

    def _prefill(self, prompts: dict[int, list[int]], n_known: int = 0) -> dict[int, np.ndarray]:
        """Decode prompts; returns, per sequence, the log-probs of its last `n_known` tokens."""
        entries = []
        for seq, ids in prompts.items():
            first = len(ids) - 1 - n_known
            entries += [(t, p, seq, p >= first) for p, t in enumerate(ids)]
            self._pos[seq] = len(ids)
        got = self._decode(entries)
        out = {}
        for seq, ids in prompts.items():
            rows = got.get(seq, [])[:-1]    # the last row predicts the next token, not a known one
            out[seq] = np.array([_lp(r, t) for r, t in zip(rows, ids[len(ids) - n_known:])])
        return out

    def _decode(self, entries) -> dict[int, list[np.ndarray]]:
        """Decode entries; keep each sequence's last row (for the next token), return every wanted row."""
        got: dict[int, list[np.ndarray]] = {}
        try:
            for idx, rows in self._context.decode(entries):
                for r, i in enumerate(idx):
                    got.setdefault(entries[i][2], []).append(rows[r].copy())
        except LlamaError as e:
            raise EngineFailure(str(e)) from e
        for seq, rows in got.items():
            self._rows[seq] = rows[-1]
        return got

    def score_with(self, cond_ids: list[int] | None, uncond_ids: list[int],
                   n_known: int = 0) -> tuple[list[float], list[float]]:
        """Start (or restart) the readers: tokens from now on get log p under `cond_ids` (None: the draft's own
        prompt and text) and under `uncond_ids`. Returns both readers' log-probs of the last `n_known` tokens
        of the readers' prompts (text already written; [] for the conditional one when cond_ids is None)."""
        self.stop_scoring()
        prompts = {UNCOND: list(uncond_ids)}
        if cond_ids is not None:
            prompts[COND] = list(cond_ids)
        if any(len(p) >= self.engine.n_ctx for p in prompts.values()):
            raise EngineFailure("a reader's prompt is longer than the context window")
        if not self._room(0, extra=sum(map(len, prompts.values()))):
            raise EngineFailure("the draft and its readers no longer fit the context window")
        got = self._prefill(prompts, n_known)
        self._reader_cond = COND if cond_ids is not None else GEN
        return (got[COND].tolist() if COND in got else []), got[UNCOND].tolist()

    def stop_scoring(self) -> None:
        for seq in (COND, UNCOND):
            if seq in self._pos:
                self._context.remove(seq)
                del self._pos[seq]
                self._rows.pop(seq, None)
        self._reader_cond = None

    @property
    def scoring(self) -> bool:
        return self._reader_cond is not None

    def _room(self, n: int, extra: int = 0) -> bool:
        """Can every live sequence take `n` more tokens (and `extra` cells for new readers)?"""
        seqs = list(self._pos)
        if any(self._pos[s] + n > self.engine.n_ctx for s in seqs):
            return False
        return self._cells_used() + n * len(seqs) + extra <= self._context.n_cells

    # ---- tokens -------------------------------------------------------------------
    def _append(self, tokens: list[int]) -> list[Step]:
        """Decode `tokens` into every live sequence; return their steps with the readers' log-probs."""
        rows_before = dict(self._rows)
        entries = []
        for seq in list(self._pos):
            start = self._pos[seq]
            entries += [(t, start + k, seq, True) for k, t in enumerate(tokens)]
            self._pos[seq] = start + len(tokens)
        got = self._decode(entries)
        steps = []
        for k, t in enumerate(tokens):
            def row(seq):   # the row that predicted token k in this sequence
                return rows_before[seq] if k == 0 else got[seq][k - 1]
            lp = _lp(row(self._reader_cond if self.scoring else GEN), t)
            lp0 = _lp(row(UNCOND), t) if self.scoring else math.nan
            steps.append(self._record(t, lp, lp0))
        return steps

    def _record(self, tok: int, lp: float, lp0: float) -> Step:
        piece = self.engine.piece(tok)
        d = self.draft
        d.ids.append(tok)
        d.logprobs.append(lp)
        d.logprobs0.append(lp0)
        d.text += self._dec.decode(piece)
        return Step(tok, piece.decode("utf-8", errors="replace"), lp, lp0)

    def feed(self, ids: list[int]) -> list[Step]:
        """Append tokens that were not sampled (text already written, an added header)."""
        ids = list(ids)
        if not ids:
            return []
        if not self._room(len(ids)):
            raise EngineFailure("the draft no longer fits the context window")
        for t in ids:
            self._chain.accept(t)
        self.n_new += len(ids)
        self.draft.stop_reason = ""
        return self._append(ids)

    def step(self) -> Step | None:
        """Sample and append one token; None when the draft ends (see `draft.stop_reason`)."""
        d = self.draft
        if self.cancel is not None and self.cancel.is_set():
            d.stop_reason = "cancelled"
            return None
        if self.n_new >= self.sampler.max_tokens or not self._room(1):
            d.stop_reason = "length"
            return None
        tok = self._choose()
        if self.engine.is_end(tok):
            d.stop_reason = "eos"
            return None
        self.n_new += 1
        (step,) = self._append([tok])
        stops = [s for s in self.sampler.stop if s]
        if stops:
            text = d.text + self._dec.decode(b"", final=False)
            hit = min((text.index(s) for s in stops if s in text), default=None)
            if hit is not None:
                self._cut(text[:hit])
                return None
        return step

    def _choose(self) -> int:
        """The next token: guided when alpha > 0 and an unconditional reader runs, then the sampler chain."""
        gen = self._rows[GEN]
        row = gen
        if self.alpha > 0 and self.scoring:
            row = guidance.guided_row(gen, guidance.log_softmax(gen), guidance.log_softmax(self._rows[UNCOND]),
                                      self.alpha, self.beta)
        return self._chain.sample(row)

    def _cut(self, kept: str) -> None:
        """End before a stop string: keep the whole tokens before it (`exact` False when one was cut)."""
        d = self.draft
        d.stop_reason = "stop"
        while d.ids and len(self.engine.pieces(d.ids)[2]) > len(kept):
            d.ids.pop()
            d.logprobs.pop()
            d.logprobs0.pop()
        d.exact = (self.engine.pieces(d.ids)[2] == kept) if d.ids else not kept
        d.text = kept

    def finish(self) -> Draft:
        """The draft, its text completed (a character left half-written is replaced)."""
        if self.draft.stop_reason != "stop":
            self.draft.text += self._dec.decode(b"", final=True)
        return self.draft
