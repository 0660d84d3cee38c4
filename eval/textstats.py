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

# One definition, shared with the preference data (finetune/ sits below eval/, so it lives there).
from finetune.draft_stats import distinct_n, ngrams, repetition_rate, words  # noqa: F401 - re-exported
