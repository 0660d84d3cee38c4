"""Brief guidance (calibrated-surprise decoding): two logit rows -> the row to sample from. Pure maths.

Classifier-free guidance for LMs (Sanchez et al. 2023, arXiv 2306.17806) / context-aware decoding
(Shi et al. 2023, arXiv 2305.14739), restricted to tokens plausible under the brief (contrastive
decoding's mask, Li et al. 2022, arXiv 2210.15097):

    row(x) = l_Y(x) + alpha * (log p(x|Y) - log p(x))    where p(x|Y) >= beta * max p(.|Y)
    row(x) = -inf                                         elsewhere

l_Y are the conditional raw logits, so log p(x|Y) + alpha * (...) and `row` differ by one constant
(logsumexp of l_Y) that no sampler stage sees, except llama.cpp's repeat penalty, which scales
positive and negative logits differently: keeping the raw logits makes alpha = 0 return l_Y
itself, the very row an unguided draft samples from. Guidance tilts sampling by exp(alpha * i_x),
i_x = log p(x|Y) - log p(x), toward tokens the brief explains. The usual sampler chain (repeat
penalty, top-k, top-p, min-p, temperature) runs on the result.

Worked example (natural logs; 3 tokens):

    >>> import numpy as np
    >>> l_y = np.array([2.0, 1.0, -3.0])                  # conditional logits
    >>> lp_y = log_softmax(l_y).round(3); lp_y            # log p(x|Y)
    array([-0.318, -1.318, -5.318])
    >>> lp_0 = np.log(np.array([0.2, 0.7, 0.1]))          # log p(x): token 1 is what anyone would write
    >>> guided_row(l_y, lp_y, lp_0, alpha=1.0, beta=0.1).round(3)
    array([3.291, 0.039,  -inf])
    >>> guided_row(l_y, lp_y, lp_0, alpha=0.0, beta=0.1)  # alpha 0: the conditional row, untouched
    array([ 2.,  1., -3.])

Token 2 is masked (p(2|Y) = 0.005 < 0.1 * p(0|Y) = 0.073). Token 0 is 3.6x likelier with the brief than
without (i = +1.291) and token 1 less likely (i = -0.961): token 0's odds against token 1 go from e^1
to e^3.25.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import BadSampler

DEFAULT_BETA = 0.1        # plausibility mask: keep tokens with p(x|Y) >= beta * max p(.|Y)
MAX_ALPHA = 3.0           # the UI's range; beyond it drafts are mostly the brief's own words
BETA_RANGE = (0.0, 1.0)


class GuidanceError(BadSampler):
    """Guidance values out of range; the message lists every problem."""


def check(alpha, beta=DEFAULT_BETA) -> list[str]:
    """Every problem with (alpha, beta), as messages ([] when both are usable)."""
    problems = []
    for name, v, lo, hi in (("guidance", alpha, 0.0, MAX_ALPHA), ("guidance beta", beta, *BETA_RANGE)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            problems.append(f"{name}: must be a number, got {v!r}")
        elif not lo <= v <= hi:
            problems.append(f"{name} {v} must be between {lo:g} and {hi:g}")
    return problems


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities of a row of raw logits, computed in float64."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def guided_row(cond_logits: np.ndarray, cond_logprobs: np.ndarray, uncond_logprobs: np.ndarray,
               alpha: float, beta: float = DEFAULT_BETA) -> np.ndarray:
    """The row to sample from (see the module docstring); `cond_logits` itself when alpha == 0."""
    if alpha == 0:
        return cond_logits
    keep = cond_logprobs >= cond_logprobs.max() + math.log(beta) if beta > 0 else np.ones(len(cond_logits), bool)
    row = np.asarray(cond_logits, dtype=np.float64) + alpha * (cond_logprobs - uncond_logprobs)
    return np.where(keep, row, -np.inf).astype(cond_logits.dtype, copy=False)
