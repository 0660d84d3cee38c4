"""Surface measures of a draft and the guards a chosen draft must keep: one definition for the generation
grid's rule (eval/grid.py) and the preference data (`python -m finetune prefer`).

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --stage sample

They live here, below eval/ (eval may import finetune, not the other way round), so both users share one
copy. Words are lower-cased runs of letters, digits and apostrophes. Worked example (asserted exactly by
tests/test_eval_generate.py through eval/textstats.py)::

    >>> w = words("The cat sat. The cat sat. The end")
    >>> w
    ['the', 'cat', 'sat', 'the', 'cat', 'sat', 'the', 'end']
    >>> distinct_n([w], 2)          # 7 bigrams, 4 different: the-cat, cat-sat, sat-the, the-end
    0.5714285714285714
    >>> repetition_rate(w, 3)       # 6 trigrams, 4 different: 1 - 4/6
    0.33333333333333337

The guards (README, "How the app's defaults are chosen"), each relative to a reference value: brief overlap
at most the reference's + 0.03, length at least 0.9x, seq-rep-4 at most + 0.02, distinct-2 at least - 0.03,
seconds per draft at most 3x::

    >>> guard_ok(0.08, 0.06, GUARDS["brief_overlap"]), guard_ok(100, 120, GUARDS["words"])
    (True, False)
"""
from __future__ import annotations

import re

from assistant import copying

_WORD = re.compile(r"[a-z0-9']+")

# The rule's guards: metric -> (kind, amount), relative to a reference value.
GUARDS = {"brief_overlap": ("<=", +0.03), "words": ("ratio>=", 0.9), "repetition_rate": ("<=", +0.02),
          "distinct_2": (">=", -0.03), "seconds": ("ratio<=", 3.0)}


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


def text_metrics(text: str, brief_text: str) -> dict:
    """The guards' measures of one passage: words, distinct-2, seq-rep-4, brief overlap, whether it has text."""
    w = words(text)
    return {"words": len(w), "distinct_2": distinct_n([w], 2), "repetition_rate": repetition_rate(w, 4),
            "brief_overlap": copying.brief_overlap(text, brief_text), "with_passage": bool(text.strip())}


def guard_ok(value, ref, rule) -> bool:
    """Does `value` keep the guard `rule` (a GUARDS entry) relative to `ref`? A missing metric passes a ceiling
    (nothing to exceed) and fails a floor."""
    kind, x = rule
    if value is None or ref is None:
        return kind in ("<=", "ratio<=")
    if kind == "<=":
        return value <= ref + x
    if kind == ">=":
        return value >= ref + x
    if kind == "ratio>=":
        return value >= x * ref
    return value <= x * ref
