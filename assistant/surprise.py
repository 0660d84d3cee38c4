"""Calibrated surprise: pure math on per-token surprisals (docs/design.md §1).

The engine turns a model into log-probabilities; this module never sees a model.
All quantities are in bits.

Worked example (asserted exactly by tests/test_surprise.py)::

    >>> s = score(s0=[8.0, 1.0, 6.0, 0.5], sY=[1.0, 0.5, 7.0, 0.25],
    ...           copied=[False, False, False, True])
    >>> s.H_X, s.H_X_given_Y, s.I                # totals, bits
    (15.5, 8.75, 6.75)
    >>> s.i.tolist()                             # i_t = s0_t - sY_t
    [7.0, 0.5, -1.0, 0.25]
    >>> s.classes                                # see classify()
    ['surprise', 'cliche', 'noise', 'cliche']
    >>> s.I_uncopied, s.I_copied                 # the copied token earns 0.25 bits
    (6.5, 0.25)
    >>> s.I_per_token, s.I_uncopied_per_token    # bits/token: 6.75 / 4 and 6.5 / 3
    (1.6875, 2.1666666666666665)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LN2 = math.log(2.0)

# Class thresholds, bits per token. A token is "surprising on its own" above HIGH
# bits (rarer than ~1 in 16) and "expected" below LOW bits (likelier than ~1 in 4).
HIGH_BITS = 4.0
LOW_BITS = 2.0
# How many bits the brief must explain for a surprising token to count as calibrated.
GAIN_BITS = 2.0

CLASSES = ("surprise", "noise", "cliche", "plain")
CLASS_HELP = {
    "surprise": "calibrated surprise: unlikely on its own, explained by the brief",
    "noise": "surprising even given the brief",
    "cliche": "predictable with or without the brief",
    "plain": "neither",
}


def bits_from_logprobs(logprobs) -> np.ndarray:
    """Natural-log probabilities -> surprisal in bits: [-ln 2] -> [1.0]."""
    return -np.asarray(logprobs, dtype=np.float64) / LN2


def classify(s0: float, sY: float) -> str:
    """Token class from its two surprisals (bits).

    surprise: s0 >= HIGH and s0 - sY >= GAIN  (8, 1 -> surprise)
    noise:    sY >= HIGH and not surprise     (6, 7 -> noise)
    cliche:   s0 < LOW and sY < LOW           (1, 0.5 -> cliche)
    plain:    everything else                 (3, 3 -> plain)
    """
    if s0 >= HIGH_BITS and s0 - sY >= GAIN_BITS:
        return "surprise"
    if sY >= HIGH_BITS:
        return "noise"
    if s0 < LOW_BITS and sY < LOW_BITS:
        return "cliche"
    return "plain"


@dataclass(frozen=True)
class Score:
    """Calibrated-surprise result for one text. Totals in bits; *_per_token in bits/token."""

    s0: np.ndarray = field(repr=False)      # bits, -log2 P(x_t | no constraints, x_<t)
    sY: np.ndarray = field(repr=False)      # bits, -log2 P(x_t | Y, x_<t)
    copied: np.ndarray = field(repr=False)  # bool, token lies in a span copied from the brief
    classes: list[str] = field(repr=False)

    @property
    def n_tokens(self) -> int:
        return int(self.s0.size)

    @property
    def i(self) -> np.ndarray:
        return self.s0 - self.sY

    @property
    def H_X(self) -> float:
        return float(self.s0.sum())

    @property
    def H_X_given_Y(self) -> float:
        return float(self.sY.sum())

    @property
    def I(self) -> float:  # noqa: E743 - the paper's name
        return float(self.i.sum())

    @property
    def I_copied(self) -> float:
        return float(self.i[self.copied].sum())

    @property
    def I_uncopied(self) -> float:
        return float(self.i[~self.copied].sum())

    @property
    def n_copied(self) -> int:
        return int(self.copied.sum())

    def _mean(self, total: float, n: int) -> float:
        return total / n if n else 0.0

    @property
    def H_X_per_token(self) -> float:
        return self._mean(self.H_X, self.n_tokens)

    @property
    def H_X_given_Y_per_token(self) -> float:
        return self._mean(self.H_X_given_Y, self.n_tokens)

    @property
    def I_per_token(self) -> float:
        return self._mean(self.I, self.n_tokens)

    @property
    def I_uncopied_per_token(self) -> float:
        return self._mean(self.I_uncopied, self.n_tokens - self.n_copied)

    def class_counts(self) -> dict[str, int]:
        return {c: self.classes.count(c) for c in CLASSES}

    def summary(self) -> dict:
        """Plain numbers for JSON: totals (bits) and means (bits/token)."""
        return {
            "n_tokens": self.n_tokens,
            "n_copied": self.n_copied,
            "H_X": self.H_X,
            "H_X_given_Y": self.H_X_given_Y,
            "I": self.I,
            "I_copied": self.I_copied,
            "I_uncopied": self.I_uncopied,
            "H_X_per_token": self.H_X_per_token,
            "H_X_given_Y_per_token": self.H_X_given_Y_per_token,
            "I_per_token": self.I_per_token,
            "I_uncopied_per_token": self.I_uncopied_per_token,
            "classes": self.class_counts(),
        }


def score(s0, sY, copied=None) -> Score:
    """Score one text from its surprisals without (s0) and with (sY) the brief, in bits."""
    a0 = np.asarray(s0, dtype=np.float64).reshape(-1)
    aY = np.asarray(sY, dtype=np.float64).reshape(-1)
    if a0.shape != aY.shape:
        raise ValueError(f"s0 has {a0.size} tokens but sY has {aY.size}: score the same tokens twice")
    if not (np.all(np.isfinite(a0)) and np.all(np.isfinite(aY))):
        raise ValueError("surprisals must be finite numbers of bits")
    c = np.zeros(a0.shape, dtype=bool) if copied is None else np.asarray(copied, dtype=bool).reshape(-1)
    if c.shape != a0.shape:
        raise ValueError(f"copied has {c.size} flags for {a0.size} tokens")
    classes = [classify(x, y) for x, y in zip(a0.tolist(), aY.tolist())]
    return Score(s0=a0, sY=aY, copied=c, classes=classes)


def compare(a: Score, b: Score) -> dict:
    """Which of two versions has the higher I per token (length-fair), and by how much (bits/token)."""
    d = a.I_per_token - b.I_per_token
    du = a.I_uncopied_per_token - b.I_uncopied_per_token
    return {"winner": "A" if d > 0 else ("B" if d < 0 else "tie"),
            "delta_I_per_token": d, "delta_I_uncopied_per_token": du}
