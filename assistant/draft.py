"""A draft being written: the sampling sequence and the readers of its score, decoded in lockstep.

    >>> with engine.draft(engine.tokenize_prompt(prompts.conditional), Sampler(seed=1)) as run:   # doctest: +SKIP
    ...     run.score_with(None, engine.tokenize_prompt(prompts.unconditional))                    # a twin stream
    ...     while (step := run.step()) is not None: print(step.piece, step.logprob)

Up to three sequences per draft, decoded in one batch per step: the one the model samples from (prompt +
draft) and the two readers of the score, conditional (brief prompt + scored text) and unconditional (neutral
prompt + scored text). When the scored text is the whole draft, the sampling sequence is the conditional
reader itself (a twin stream: two sequences). The readers can start mid-draft, which is how a tuned model's
passage is scored apart from its notes. Guidance (assistant/guidance.py) tilts the sampled row; the log-probs
recorded are always the unguided readers'.

The unconditional reader is lazy when guidance is off: its row is not needed to pick a token, so its tokens
wait and are decoded `lazy_every` at a time, in the batch of a later step (one k-token chunk costs far less
than k one-token rows). Their log-probs are nan until then; `sync()` reads what waits (the writer calls it
before every live score and at the end).

Several drafts of one prompt run side by side in one `Lockstep` (assistant/lockstep.py): a DraftRun is one
of its lanes, with its own sequence ids, sampler chain and text. Every position also keeps its top-k
alternatives under the brief (logits.TopK): the token panel's numbers, with no extra pass.
"""
from __future__ import annotations

import codecs
import math
from dataclasses import dataclass, field
from typing import ContextManager, Protocol

import numpy as np

from . import guidance
from .errors import EngineFailure
from .llama import Context, SamplerChain
from .logits import TOP_K, TopK, log_norm, logprobs_of, top_of
from .sampler import Sampler

GEN, COND, UNCOND = 0, 1, 2   # a draft's sequences: the sampling sequence and the two readers
SEQS_PER_DRAFT = 3
MAX_LANES = 8                 # drafts decoded side by side at most (best of N, N <= 8)
N_SEQUENCES = SEQS_PER_DRAFT * MAX_LANES   # sequences the context must hold
NO_TOP = np.full(TOP_K, np.nan)


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
    logprob0: float = math.nan   # natural log, unconditional reader; nan while no reader (or a lazy one) scores


@dataclass
class Draft:
    """What a draft leaves behind: its tokens, text and how it ended; per token, the top-k alternatives."""
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    logprobs0: list[float] = field(default_factory=list)
    text: str = ""
    stop_reason: str = ""   # "eos", "stop", "length", "cancelled"
    exact: bool = True      # text == detokenized ids (a stop string can cut a token in two)
    top_ids: list[np.ndarray] = field(default_factory=list)
    top_lp: list[np.ndarray] = field(default_factory=list)
    top_lp0: list[np.ndarray] = field(default_factory=list)

    def top(self, start: int = 0) -> TopK | None:
        return TopK.stack(self.top_ids[start:], self.top_lp[start:], self.top_lp0[start:])

    def _pop(self) -> None:
        for a in (self.ids, self.logprobs, self.logprobs0, self.top_ids, self.top_lp, self.top_lp0):
            a.pop()


@dataclass
class Known:
    """The readers' log-probs of text already written (read when the readers start)."""
    lp: list[float]
    lp0: list[float]
    top: TopK | None


class DraftRun:
    """One draft (a lane of a Lockstep). With a single lane, `step()` samples and decodes one token; with
    several, the Lockstep steps them all. `feed(ids)` appends tokens that were not sampled; `score_with(cond,
    uncond)` starts the readers of the score (cond None: the sampling sequence reads for Y)."""

    def __init__(self, group, index: int, sampler: Sampler, alpha: float, beta: float, lazy_every: int):
        self.group, self.index, self.base = group, index, index * SEQS_PER_DRAFT
        self.engine, self.sampler, self.alpha, self.beta = group.engine, sampler, alpha, beta
        self.lazy_every = lazy_every if alpha == 0 else 0   # guidance needs the unconditional row every step
        self.draft = Draft()
        self.n_new = 0              # tokens sampled or fed since the prompt (max_tokens counts them)
        self.known_logprobs: list[float] = []    # log-probs of the prompt's last n_known tokens
        self.known_top: TopK | None = None
        self._pos: dict[int, int] = {}           # sequence -> next position
        self._rows: dict[int, np.ndarray] = {}   # sequence -> logits predicting its next token (a copy)
        self._reader_cond: int | None = None     # None: no readers; GEN or COND: who reads for Y
        self._pending: list[int] = []            # draft indices whose unconditional row waits (lazy reader)
        self._flush: list[int] = []              # ... and those being read in the batch under way
        self._tokens: list[int] = []             # tokens planned for the batch under way
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        s = sampler
        self._chain = SamplerChain(self.engine.n_vocab, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                   min_p=s.min_p, repeat_penalty=s.repeat_penalty, seed=s.seed)

    def close(self) -> None:
        if self._chain is not None:
            self._chain.close()
            self._chain = None

    @property
    def active(self) -> bool:
        return not self.draft.stop_reason

    @property
    def scoring(self) -> bool:
        return self._reader_cond is not None

    # ---- sequences -------------------------------------------------------------
    def _prefill(self, seq: int, ids: list[int], n_known: int) -> list[np.ndarray]:
        """Decode a prompt into `seq` (or share it from a lane that decoded the same); the rows that predicted
        its last `n_known` tokens."""
        self._pos[seq] = len(ids)
        return self.group.prefill(self, seq, ids, n_known)

    def score_with(self, cond_ids: list[int] | None, uncond_ids: list[int], n_known: int = 0) -> Known:
        """Start (or restart) the readers: tokens from now on get log p under `cond_ids` (None: the draft's own
        prompt and text) and under `uncond_ids`. Returns both readers' log-probs of the last `n_known` tokens
        of the readers' prompts (text already written) and their alternatives."""
        self.stop_scoring()
        prompts = {UNCOND: list(uncond_ids)}
        if cond_ids is not None:
            prompts[COND] = list(cond_ids)
        if any(len(p) >= self.engine.n_ctx for p in prompts.values()):
            raise EngineFailure("a reader's prompt is longer than the context window")
        if not self.group.room(extra=sum(map(len, prompts.values()))):
            raise EngineFailure("the draft and its readers no longer fit the context window")
        rows0 = self._prefill(UNCOND, prompts[UNCOND], n_known)
        known_ids = prompts[UNCOND][len(prompts[UNCOND]) - n_known:] if n_known else []
        if cond_ids is None:
            lp, top = list(self.known_logprobs[-n_known:]) if n_known else [], self.known_top
        else:
            rows = self._prefill(COND, prompts[COND], n_known)
            lp, top = _read(rows, known_ids)
        self._reader_cond = COND if cond_ids is not None else GEN
        if not n_known:
            return Known([], [], None)
        lp0 = [float(logprobs_of(r, np.array([t]))[0]) for r, t in zip(rows0, known_ids)]
        top = TopK(top.ids, top.lp, np.array([logprobs_of(r, i) for r, i in zip(rows0, top.ids)]))
        return Known(lp, lp0, top)

    def stop_scoring(self) -> None:
        for seq in (COND, UNCOND):
            if seq in self._pos:
                self.group.context.remove(self.base + seq)
                self.group.forget(self.base + seq)
                del self._pos[seq]
                self._rows.pop(seq, None)
        self._pending.clear()
        self._reader_cond = None

    def fits(self, n: int) -> bool:
        """Can every sequence of this draft take `n` more tokens (waiting ones counted)?"""
        waiting = {UNCOND: len(self._pending)}
        return all(p + waiting.get(s, 0) + n <= self.engine.n_ctx for s, p in self._pos.items())

    # ---- tokens -------------------------------------------------------------------
    def plan(self, tokens: list[int]) -> list[tuple[int, int, int, bool]]:
        """The entries (global sequence ids) that append `tokens` to every live sequence of this draft; the
        unconditional reader's tokens wait when it is lazy, and go with this batch once `lazy_every` wait."""
        self._before = dict(self._rows)
        self._tokens, self._flush = list(tokens), []
        entries = []
        for seq in list(self._pos):
            if seq == UNCOND and self.lazy_every:
                continue
            start = self._pos[seq]
            entries += [(t, start + k, self.base + seq, True) for k, t in enumerate(tokens)]
            self._pos[seq] = start + len(tokens)
        if self.scoring and self.lazy_every:
            n = len(self.draft.ids)
            self._pending += range(n, n + len(tokens))
            if len(self._pending) >= self.lazy_every:
                entries += self._flush_entries()
        return entries

    def _flush_entries(self) -> list[tuple[int, int, int, bool]]:
        """Entries that read every waiting token into the unconditional reader (rows arrive in `_filled`)."""
        ids = self.draft.ids + self._tokens
        self._flush, self._pending = [i for i in self._pending if i < len(ids)], []   # a stop string cuts tokens
        self._flush_before = self._rows[UNCOND]
        start = self._pos[UNCOND]
        self._pos[UNCOND] = start + len(self._flush)
        return [(ids[i], start + k, self.base + UNCOND, True) for k, i in enumerate(self._flush)]

    def absorb(self, got: dict[int, list[np.ndarray]]) -> list[Step]:
        """Record the planned tokens from the rows the batch gave (local sequence -> rows, in entry order)."""
        before, tokens = self._before, self._tokens
        lazy = bool(self.lazy_every)
        steps = []
        for k, t in enumerate(tokens):
            def row(seq):   # the row that predicted token k in this sequence
                return before[seq] if k == 0 else got[seq][k - 1]
            cond = row(self._reader_cond if self.scoring else GEN)
            lse = log_norm(cond)
            lp = float(cond[t] - lse)
            top_ids, top_lp = top_of(cond, lse=lse)
            lp0, top_lp0 = math.nan, NO_TOP
            if self.scoring and not lazy:
                u = row(UNCOND)
                lse0 = log_norm(u)
                lp0, top_lp0 = float(u[t] - lse0), logprobs_of(u, top_ids, lse0)
            steps.append(self._record(t, lp, lp0, top_ids, top_lp, top_lp0))
        self._tokens = []
        if self._flush:
            self._filled(got.get(UNCOND, []))
        return steps

    def _filled(self, rows: list[np.ndarray]) -> None:
        """The lazy reader's rows arrived (in the order of `_flush_entries`)."""
        self._fill(self._flush, [self._flush_before] + rows[:-1])
        self._flush = []

    def _fill(self, indices: list[int], rows: list[np.ndarray]) -> None:
        """The lazy reader's rows arrived: the log-probs of the tokens at these draft indices."""
        d = self.draft
        for i, r in zip(indices, rows):
            if i >= len(d.ids):      # cut by a stop string meanwhile
                continue
            lse = log_norm(r)
            d.logprobs0[i] = float(r[d.ids[i]] - lse)
            d.top_lp0[i] = logprobs_of(r, d.top_ids[i], lse)

    def _record(self, tok: int, lp: float, lp0: float, top_ids, top_lp, top_lp0) -> Step:
        piece = self.engine.piece(tok)
        d = self.draft
        d.ids.append(tok)
        d.logprobs.append(lp)
        d.logprobs0.append(lp0)
        d.top_ids.append(top_ids)
        d.top_lp.append(top_lp)
        d.top_lp0.append(top_lp0)
        d.text += self._dec.decode(piece)
        return Step(tok, piece.decode("utf-8", errors="replace"), lp, lp0)

    def sync(self) -> None:
        """Read what waits for the lazy unconditional reader, now (the group's sync reads every lane at once)."""
        self.group.sync([self])

    def feed(self, ids: list[int]) -> list[Step]:
        """Append tokens that were not sampled (text already written, an added header)."""
        ids = list(ids)
        if not ids:
            return []
        if not (self.fits(len(ids)) and self.group.room(len(ids) * len(self._pos))):
            raise EngineFailure("the draft no longer fits the context window")
        for t in ids:
            self._chain.accept(t)
        self.n_new += len(ids)
        self.draft.stop_reason = ""
        return self.absorb(self._local(self.group.decode(self.plan(ids))))

    def _local(self, got: dict[int, list[np.ndarray]]) -> dict[int, list[np.ndarray]]:
        """A batch's rows (by global sequence) -> this lane's, by its local sequence ids."""
        return {g - self.base: rows for g, rows in got.items() if g // SEQS_PER_DRAFT == self.index}

    def begin(self) -> int | None:
        """This step's token, or None when the draft ends here (see `draft.stop_reason`)."""
        d = self.draft
        cancel = self.group.cancel
        if cancel is not None and cancel.is_set():
            d.stop_reason = "cancelled"
            return None
        if self.n_new >= self.sampler.max_tokens or not self.fits(1):
            d.stop_reason = "length"
            return None
        tok = self._choose()
        if self.engine.is_end(tok):
            d.stop_reason = "eos"
            return None
        self.n_new += 1
        return tok

    def end(self) -> bool:
        """After the step's decode: False when a stop string ended the draft (the text is cut before it)."""
        stops = [s for s in self.sampler.stop if s]
        if stops:
            text = self.draft.text + self._dec.decode(b"", final=False)
            hit = min((text.index(s) for s in stops if s in text), default=None)
            if hit is not None:
                self._cut(text[:hit])
                return False
        return True

    def step(self) -> Step | None:
        """Sample and append one token (a lone draft); None when the draft ends (see `draft.stop_reason`)."""
        return self.group.step_one(self)

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
            d._pop()
        d.exact = (self.engine.pieces(d.ids)[2] == kept) if d.ids else not kept
        d.text = kept

    def finish(self) -> Draft:
        """The draft, its readers synced, its text completed (a character left half-written is replaced)."""
        self.sync()
        if self.draft.stop_reason != "stop":
            self.draft.text += self._dec.decode(b"", final=True)
        return self.draft


def _read(rows: list[np.ndarray], ids: list[int]) -> tuple[list[float], TopK | None]:
    """Log-probs of `ids` from the rows that predicted them, and each row's top-k (lp0 not yet known)."""
    lp, tids, tlp = [], [], []
    for r, t in zip(rows, ids):
        lse = log_norm(r)
        lp.append(float(r[t] - lse))
        i, l = top_of(r, lse=lse)
        tids.append(i)
        tlp.append(l)
    return lp, TopK.stack(tids, tlp, [NO_TOP] * len(tids))
