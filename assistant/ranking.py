"""Best-of-N: which of N drafts of one brief to show first. Pure arithmetic on score summaries.

Ranking by I per token would pick restatements of the brief (docs/design.md §6: I rises under every reader
when a draft re-orders the brief's words, and per-token means reward short drafts full of its names).
So the ranking score is built to make restatement lose:

- I over *uncopied* tokens only (spans copied from the brief earn nothing),
- as a total over the fixed token budget, not per written token (a short draft cannot win on a few
  well-explained names),
- and a filter on brief overlap: drafts whose word pairs restate the brief more than OVERLAP_LIMIT
  rank after every draft that does not, whatever their I.

The generation grid (python -m eval grid; eval/results/generate-grid) checked it: for every writer and
guidance alpha, best of 4's pick has a brief overlap at most a random pick's and is as long (within 5 %),
with I_uncopied under the score's 2-word copied spans.

Worked example (budget 100 tokens; tests/test_ranking.py asserts it):

    >>> a = {"I_uncopied": 30.0, "brief_overlap": 0.05}   # 0.30 bits per budget token
    >>> b = {"I_uncopied": 45.0, "brief_overlap": 0.40}   # higher, but restates the brief
    >>> c = {"I_uncopied": 12.0, "brief_overlap": 0.00}   # 0.12
    >>> [round(rank_score(x, 100), 2) for x in (a, b, c)]
    [0.3, 0.45, 0.12]
    >>> rank([a, b, c, None], budget_tokens=100)          # b after both clean drafts; no score last
    [0, 2, 1, 3]
"""
from __future__ import annotations

OVERLAP_LIMIT = 0.15    # share of a draft's word bigrams found in the brief (base drafts: ~0.075 measured)


def rank_score(score: dict, budget_tokens: int) -> float:
    """Bits of I over uncopied tokens per token of the budget."""
    return float(score["I_uncopied"]) / max(int(budget_tokens), 1)


def restates(score: dict) -> bool:
    overlap = score.get("brief_overlap")
    return overlap is not None and overlap > OVERLAP_LIMIT


def rank(scores: list[dict | None], budget_tokens: int) -> list[int]:
    """Indices of `scores`, best first (None: a draft without a scored passage, last, in its order)."""
    def key(i):
        s = scores[i]
        if s is None:
            return (2, 0.0, i)
        return (1 if restates(s) else 0, -rank_score(s, budget_tokens), i)
    return sorted(range(len(scores)), key=key)
