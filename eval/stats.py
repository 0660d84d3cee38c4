"""Statistics of the pair evaluation: pure functions on lists of numbers (bits/token).

    python -m pytest tests/test_eval_stats.py

ΔI for a pair is I(high) - I(degraded) (per-token means); the validation rate is the share
of pairs with ΔI > 0; Δ(ΔI) for a pair is ΔI(tuned) - ΔI(base) (docs/design.md §8).
The tuned model is a better judge when Δ(ΔI) is positive: a one-sided Wilcoxon
signed-rank test (alternative "greater") and Cohen's d_z (mean / sd of the paired
differences, sd with ddof=1) say how sure and how large.

Worked example (asserted exactly by tests/test_eval_stats.py)::

    >>> validation_rate([0.5, -0.25, 1.0, 0.0])     # 0.0 is not a validation
    0.5
    >>> cohens_dz([1.0, 2.0, 3.0])                   # mean 2, sd 1
    2.0
    >>> wilcoxon_greater([-1.0, 2.0, 3.0, 4.0, 5.0]) # W+ = 2+3+4+5 = 14; 2 of 2^5 sign patterns reach 14
    0.0625
    >>> wilcoxon_greater([1.0, 2.0, 3.0, 4.0, 5.0])  # W+ = 15, only the all-positive pattern: 1/32
    0.03125
"""
from __future__ import annotations

import numpy as np

MIN_PAIRS_FOR_TEST = 2   # below this there is no test to run (None in reports)


def _arr(xs) -> np.ndarray:
    return np.asarray(list(xs), dtype=np.float64)


def mean(xs) -> float | None:
    a = _arr(xs)
    return float(a.mean()) if a.size else None


def validation_rate(delta_I) -> float | None:
    """Share of pairs whose ΔI is strictly positive (the high passage wins)."""
    a = _arr(delta_I)
    return float((a > 0).mean()) if a.size else None


def paired_differences(tuned, base) -> np.ndarray:
    """Δ(ΔI) per pair: tuned[i] - base[i]; the two lists must cover the same pairs in order."""
    t, b = _arr(tuned), _arr(base)
    if t.shape != b.shape:
        raise ValueError(f"paired lists differ in length: {t.size} vs {b.size}")
    return t - b


def cohens_dz(diffs) -> float | None:
    """Cohen's d_z = mean / sd of paired differences (sd with ddof=1); None when undefined.

    [1, 2, 3] -> 2.0. None when it is undefined: fewer than two differences, or a zero sd
    (every pair moved by exactly the same amount).
    """
    a = _arr(diffs)
    if a.size < 2:
        return None
    sd = float(a.std(ddof=1))
    m = float(a.mean())
    return None if sd == 0.0 else m / sd


def wilcoxon_greater(diffs) -> float | None:
    """One-sided Wilcoxon signed-rank p for "the differences are shifted above 0".

    scipy.stats.wilcoxon(diffs, alternative="greater") with its defaults (zeros dropped,
    exact distribution for small samples without ties). None when there is nothing to test
    (fewer than MIN_PAIRS_FOR_TEST differences, or all of them zero).
    """
    from scipy.stats import wilcoxon

    a = _arr(diffs)
    if a.size < MIN_PAIRS_FOR_TEST or not np.any(a != 0):
        return None
    return float(wilcoxon(a, alternative="greater").pvalue)


def delta_delta(tuned_delta_I, base_delta_I) -> dict:
    """{n, mean, wilcoxon_p, cohens_d} of Δ(ΔI) = ΔI(tuned) - ΔI(base) over the same pairs."""
    d = paired_differences(tuned_delta_I, base_delta_I)
    return {"n": int(d.size), "mean": mean(d), "wilcoxon_p": wilcoxon_greater(d), "cohens_d": cohens_dz(d)}
