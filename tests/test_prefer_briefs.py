"""The real training briefs of `python -m finetune prefer` (issue 21): at least 100 new ones, varied, and none
close to an evaluation brief or pair. Runs on the committed files and skips nothing: a missing
finetune/data/prefer-briefs.jsonl is a failure.

    python -m pytest -q tests/test_prefer_briefs.py
"""
from pathlib import Path

from finetune import prefer_briefs
from finetune.prefer_config import PreferConfig

ROOT = Path(__file__).resolve().parent.parent
CFG = PreferConfig.load(ROOT / "finetune/configs/prefer-dpo.toml")
NEW = ROOT / CFG.briefs[0]


def _load():
    return prefer_briefs.load_training_briefs(ROOT / CFG.corpus, [ROOT / f for f in CFG.briefs])


def test_at_least_100_new_briefs_in_the_brief_format():
    assert NEW.is_file(), f"{NEW} is missing: the preference briefs are part of issue 21"
    new = prefer_briefs.load_brief_file(NEW)
    assert len(new) >= 100
    assert all(b.id.startswith("tb-") for b in new)
    assert len({b.brief.intent.strip().lower() for b in new}) == len(new)


def test_no_training_brief_is_close_to_an_evaluation_brief_or_pair():
    briefs = _load()
    d = prefer_briefs.disjointness(briefs, [ROOT / f for f in CFG.eval_briefs], [ROOT / f for f in CFG.eval_pairs])
    assert d["limit"] == 0.30
    assert not d["problems"], d["problems"][:10]
    assert len(briefs) >= 200        # the corpus's 100 training briefs + the new ones


def test_the_new_briefs_are_spread():
    s = prefer_briefs.spread(prefer_briefs.load_brief_file(NEW))
    assert len(s["genres"]) >= 10, s["genres"]
    assert len(s["task_kinds"]) >= 3, s["task_kinds"]
    assert len(s["audiences"]) >= 30, s["audiences"]
    assert 0.2 <= s["with_text_so_far"] <= 0.8, s["with_text_so_far"]
    assert max(s["genres"].values()) <= 0.25 * s["n"], s["genres"]
