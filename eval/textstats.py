"""Surface statistics of generated drafts: length, distinct-n, repetition. Pure functions.

    python -m eval generate --briefs eval/data/briefs.jsonl --n 2 --out eval/out/generate

Words are lower-cased runs of letters, digits and apostrophes. Worked example
(asserted exactly by tests/test_eval_generate.py)::

    >>> w = words("The cat sat. The cat sat. The end")
    >>> w
    ['the', 'cat', 'sat', 'the', 'cat', 'sat', 'the', 'end']
    >>> distinct_n([w], 2)          # 7 bigrams, 4 different: the-cat, cat-sat, sat-the, the-end
    0.5714285714285714
    >>> repetition_rate(w, 3)       # 6 trigrams, 4 different: 1 - 4/6
    0.33333333333333337
"""
from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def ngrams(seq: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def distinct_n(docs: list[list[str]], n: int = 2) -> float | None:
    """Different n-grams / all n-grams, pooled over `docs` (Li et al. 2016); None without n-grams."""
    grams = [g for d in docs for g in ngrams(d, n)]
    return len(set(grams)) / len(grams) if grams else None


def repetition_rate(seq: list[str], n: int = 4) -> float | None:
    """Share of a text's n-grams that repeat an earlier one: 1 - distinct/all (seq-rep-n)."""
    grams = ngrams(seq, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else None
