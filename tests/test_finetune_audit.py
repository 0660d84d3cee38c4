"""Coverage audit: shares and warnings on labelled data, estimates for unlabelled CoT text.

    python -m pytest tests/test_finetune_audit.py -q
"""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from finetune import annotations, audit
from finetune.__main__ import main

VALID = Path(__file__).parent / "data" / "finetune_valid.jsonl"


def test_coverage_counts():
    c = audit.coverage(annotations.load(VALID))
    assert (c["annotations"], c["steps"]) == (4, 20)
    assert {k: v["n"] for k, v in c["by_source"].items()} == {"intent": 6, "audience": 6, "reality": 4, "craft": 4}
    assert c["by_source"]["reality"]["share"] == 0.2
    assert sum(v["n"] for v in c["by_dimension"].values()) == 20
    assert sum(sum(row.values()) for row in c["source_by_dimension"].values()) == 20
    assert c["splits"] == {"train": 3, "heldout": 1} and c["warnings"] == []
    assert c["lengths"]["steps_per_annotation"] == {"min": 5, "median": 5, "max": 5, "mean": 5.0}


def test_warning_for_an_under_taught_source():
    anns = annotations.load(VALID)
    skewed = [replace(a, reasoning=tuple(replace(s, source="craft") if s.source == "reality" else s
                                         for s in a.reasoning)) for a in anns]
    c = audit.coverage(skewed)
    assert c["by_source"]["reality"]["n"] == 0
    assert c["warnings"] == ["source 'reality' is 0% of reasoning steps (under 15%): the data under-teaches it; "
                             "add steps that answer to reality"]
    assert "WARNING: source 'reality'" in audit.format_coverage(c)


def test_adjusted_shares_recovers_true_shares():
    conf = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    true = np.array([0.5, 0.3, 0.2])
    assert np.allclose(audit.adjusted_shares(true @ conf, conf), true)


def test_softmax_classifier_separates_clusters():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(m, 0.3, size=(30, 5)) for m in (-1, 0, 1)])
    y = np.repeat([0, 1, 2], 30)
    W = audit.fit_softmax(X, y, 3)
    assert (audit.predict(W, X) == y).mean() > 0.95
    acc, conf = audit.cross_validate(X, y, [f"g{i % 10}" for i in range(90)], 3)
    assert acc > 0.9 and np.allclose(conf.sum(1), 1)


def test_estimate_for_unlabelled_text(tmp_path, capsys):
    rows = [{"cot": {"steps": ["The children listening at bedtime need a sound they can join in with.",
                               "Ten-year-old readers would stop at a word like torrential."]}},
            {"cot": {"steps": "The world fixes the doors as locked at nine. So the culprit was inside."}},
            {"other": 1}]
    path = tmp_path / "u.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert audit.read_unlabelled(path, "cot.steps")[2] == "The world fixes the doors as locked at nine."
    assert main(["audit", str(VALID), "--unlabelled", str(path), "--text-field", "cot.steps", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    est = report["estimate"]
    assert est["sentences"] == 4 and est["labelled_steps"] == 20
    for target in ("source", "dimension"):
        assert 0 <= est[target]["heldout_accuracy"] <= 1
        assert abs(sum(est[target]["raw_shares"].values()) - 1) < 1e-3
        assert abs(sum(est[target]["adjusted_shares"].values()) - 1) < 1e-3


def test_cli_audit_text(capsys):
    assert main(["audit", str(VALID)]) == 0
    out = capsys.readouterr().out
    assert "20 reasoning steps" in out and "no source under 15% of steps" in out
