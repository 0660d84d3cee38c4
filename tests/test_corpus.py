"""The CQA corpus keeps meeting its bar: valid, 100-120 annotations, balanced, ~10% held out."""
from collections import Counter
from pathlib import Path

from finetune import annotations

CORPUS = Path(__file__).resolve().parent.parent / "finetune" / "data" / "cqa.jsonl"


def test_corpus_validates_and_meets_the_bar():
    anns, problems = annotations.read(CORPUS)
    assert problems == []
    assert 100 <= len(anns) <= 120
    assert len({a.id for a in anns}) == len(anns)
    steps = [s for a in anns for s in a.reasoning]
    sources, dims = Counter(s.source for s in steps), Counter(s.dimension for s in steps)
    for src in ("intent", "audience", "reality", "craft"):
        assert 0.20 <= sources[src] / len(steps) <= 0.35, (src, sources)
    for dim in ("ethos", "mythos", "lexis", "dianoia"):
        assert dims[dim] / len(steps) >= 0.15, (dim, dims)
    assert len({a.genre for a in anns}) >= 10
    for a in anns:
        assert 5 <= len(a.reasoning) <= 10, a.id
        assert 80 <= len(a.passage.split()) <= 300, a.id
        assert all(s.choice in a.passage for s in a.reasoning), a.id
    heldout = [a for a in anns if a.split == "heldout"]
    assert 0.07 <= len(heldout) / len(anns) <= 0.13
    assert len({a.genre for a in heldout}) >= 8  # spread over genres, not bunched
