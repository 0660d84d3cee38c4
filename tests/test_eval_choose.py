"""The shipping rule (eval/choose.py): best literary Δ(ΔI), ties to the earlier epoch, none if none is positive."""
from __future__ import annotations

import json

import pytest

from eval.__main__ import main
from eval.choose import TIE_BITS, choose


def report(means: dict[str, float], factual: float = 0.5) -> dict:
    dd = {v: {"mean": m, "wilcoxon_p": 0.5, "cohens_d": 0.1} for v, m in means.items()}
    return {"variants": ["base", *means],
            "groups": {"literary": {"n": 40, "delta_delta": dd},
                       # factual must not sway the choice: give it a different, larger winner
                       "factual": {"n": 20, "delta_delta": {v: {"mean": factual * (i + 1)} for i, v in
                                                            enumerate(means)}}}}


def test_largest_literary_mean_wins():
    c = choose(report({"epoch-1": 0.01, "epoch-2": 0.05, "epoch-3": 0.02}))
    assert c.epoch == 2 and c.means == {1: 0.01, 2: 0.05, 3: 0.02}


def test_ties_go_to_the_earlier_epoch():
    c = choose(report({"epoch-3": 0.0500, "epoch-5": 0.0505, "epoch-4": 0.0400}))
    assert c.epoch == 3 and "tied with epochs [5]" in c.reason
    # just outside the tie band the later epoch wins
    c = choose(report({"epoch-3": 0.0500, "epoch-5": 0.0500 + 2 * TIE_BITS}))
    assert c.epoch == 5


def test_no_positive_epoch_ships_none():
    c = choose(report({"epoch-1": -0.01, "epoch-2": 0.0}))
    assert c.epoch is None and "none ships" in c.reason


@pytest.mark.parametrize("bad,message", [
    ({"groups": {}}, "no literary"),
    (report({}), "compares no adapter"),
    (report({"e1": 0.1}), "not named epoch-N"),
])
def test_bad_reports_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        choose(bad)


def test_cli_prints_the_choice(tmp_path, capsys):
    f = tmp_path / "report.json"
    f.write_text(json.dumps(report({"epoch-1": 0.02, "epoch-2": 0.03})), encoding="utf-8")
    assert main(["choose", str(f), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("choice: epoch 2") and json.loads(out[-1])["epoch"] == 2
    f.write_text("{not json", encoding="utf-8")
    assert main(["choose", str(f)]) == 1
    assert "not a JSON report" in capsys.readouterr().err
