"""Logit rows -> log-probabilities of chosen tokens: pure maths, shared by the log-prob pass and drafts.

    >>> import numpy as np
    >>> rows = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], dtype=np.float32))
    >>> np.exp(logprobs_at(rows, np.array([0, 2]))).round(6)
    array([0.5, 0.8])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS_AT_ONCE = 64        # logit rows turned into log-probs at a time (bounds the float64 temporaries)


def logprobs_at(rows: np.ndarray, targets) -> np.ndarray:
    """log softmax(rows)[targets], row by row (blocks of ROWS_AT_ONCE rows). exp runs in float32 after the max
    is subtracted (every term in (0, 1]) and sums in float64: ~1e-7 relative, twice as fast as float64."""
    out = np.empty(len(targets), dtype=np.float64)
    for a in range(0, len(targets), ROWS_AT_ONCE):
        x = rows[a: a + ROWS_AT_ONCE]
        m = x.max(axis=1, keepdims=True)
        lse = m[:, 0].astype(np.float64) + np.log(np.exp(x - m).sum(axis=1, dtype=np.float64))
        out[a: a + len(x)] = x[np.arange(len(x)), targets[a: a + len(x)]] - lse
    return out


def logprob_of(row: np.ndarray, token: int) -> float:
    """log softmax(row)[token] for one row, computed as logprobs_at does."""
    return float(logprobs_at(row[None, :], np.array([token]))[0])


TOP_K = 10               # alternatives kept per token position (the token panel's rows)
TOP_MARGIN = 8.0         # nats below the best logit searched first for the top-k (a full argpartition costs ~1 ms)


@dataclass(frozen=True)
class TopK:
    """What could have been written at each position: the K likeliest tokens under the brief (row t = the
    alternatives to token t), best first, with their natural-log probabilities under the brief (`lp`) and
    without it (`lp0`, nan while no unconditional reader has read that position)."""
    ids: np.ndarray       # (n, K) int32
    lp: np.ndarray        # (n, K) float64, log p(x | Y)
    lp0: np.ndarray       # (n, K) float64, log p(x)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def stack(ids: list, lp: list, lp0: list) -> "TopK | None":
        if not ids:
            return None
        return TopK(np.asarray(ids, dtype=np.int32).reshape(len(ids), -1), np.asarray(lp, dtype=np.float64),
                    np.asarray(lp0, dtype=np.float64))

    def concat(self, other: "TopK | None") -> "TopK":
        if other is None or not len(other):
            return self
        return TopK(np.concatenate([self.ids, other.ids]), np.concatenate([self.lp, other.lp]),
                    np.concatenate([self.lp0, other.lp0]))


def log_norm(row: np.ndarray) -> float:
    """log sum exp(row), as logprobs_at computes it (float32 exp, float64 sum)."""
    m = row.max()
    return float(m) + float(np.log(np.exp(row - m).sum(dtype=np.float64)))


def top_of(row: np.ndarray, k: int = TOP_K, lse: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, natural-log probabilities) of the k likeliest tokens of one logit row, best first.

    >>> ids, lp = top_of(np.log(np.array([0.1, 0.6, 0.3], dtype=np.float32)), k=2)
    >>> ids.tolist(), np.exp(lp).round(6).tolist()
    ([1, 2], [0.6, 0.3])
    """
    k = min(k, len(row))
    m = row.max()
    cand = np.flatnonzero(row >= m - TOP_MARGIN)
    if len(cand) < k:
        cand = np.argpartition(row, -k)[-k:]
    elif len(cand) > k:
        cand = cand[np.argpartition(row[cand], -k)[-k:]]
    ids = cand[np.argsort(-row[cand], kind="stable")].astype(np.int32)
    lse = log_norm(row) if lse is None else lse
    return ids, row[ids].astype(np.float64) - lse


def logprobs_of(row: np.ndarray, ids: np.ndarray, lse: float | None = None) -> np.ndarray:
    """log softmax(row)[ids] for several ids of one row."""
    lse = log_norm(row) if lse is None else lse
    return row[ids].astype(np.float64) - lse
