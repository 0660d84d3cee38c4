"""The copied-span rule (2 words or 3) measured on drafts and pairs, and decided as README says."""
import doctest

import pytest

from eval import copyrule, grid
from eval.pairs import Pair


def _score(i2, i3, n_copied2=4, n_copied3=2):
    return {"n_tokens": 20, "copy_rules": {"2": {"I_uncopied_per_token": i2, "I_uncopied": 16 * i2, "n_copied": n_copied2},
                                           "3": {"I_uncopied_per_token": i3, "I_uncopied": 18 * i3, "n_copied": n_copied3}}}


def test_docstring_examples():
    assert doctest.testmod(copyrule).failed == 0


def test_on_generations_measures_how_much_restating_is_rewarded():
    # Under 3-word spans I_uncopied rises with brief overlap; under 2-word spans the copied words earn nothing.
    rows = [{"brief_overlap": ov, "scores": {"g": _score(0.3 + 0.01 * (k % 3), 0.3 + ov)}}
            for k, ov in enumerate([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])]
    rows.append({"brief_overlap": 0.2, "scores": {"g": None}})          # no passage: left out
    g = copyrule.on_generations(rows, "g")
    assert g["3"]["rho"] == pytest.approx(1.0) and g["3"]["n_drafts"] == 6
    assert abs(g["2"]["rho"]) < 0.5
    assert g["2"]["copied_share"] == pytest.approx(0.2) and g["3"]["copied_share"] == pytest.approx(0.1)
    pairs_ok = {"2": {"tuned_p": 0.01, "tuned_mean": 0.05, "base_rate": 0.50}, "3": {"base_rate": 0.52}}
    assert copyrule.decide(g, pairs_ok)["n"] == 2
    worse_rate = {**pairs_ok, "3": {"base_rate": 0.60}}                  # the base judge loses 10 points
    assert copyrule.decide(g, worse_rate)["n"] == 3
    same = {n: {**g["3"]} for n in ("2", "3")}                          # no drop in rho: nothing to gain
    assert copyrule.decide(same, pairs_ok)["n"] == 3


def test_on_pairs_per_rule():
    pairs = [Pair(f"p{k}", "literary", "craft", "c", "h", "d") for k in range(6)] + [Pair("f", "factual", "craft", "c", "h", "d")]
    base = {p.id: {"high": _score(0.5, 0.5), "degraded": _score(0.4, 0.6)} for p in pairs}
    tuned = {p.id: {"high": _score(0.6 + 0.01 * k, 0.5), "degraded": _score(0.4, 0.6)} for k, p in enumerate(pairs)}
    out = copyrule.on_pairs({"base": base, "t": tuned}, pairs, "base", "t")
    assert out["2"]["n_pairs"] == 6 and out["2"]["base_rate"] == 1.0 and out["3"]["base_rate"] == 0.0
    assert out["2"]["tuned_mean"] == pytest.approx(0.125) and out["2"]["tuned_p"] < 0.05
    assert out["3"]["tuned_mean"] == pytest.approx(0.0)
    assert copyrule.has_rules({"base": base}) and not copyrule.has_rules({"base": {"p": {"high": {"I": 1}}}})


def test_use_copy_rule_and_best_of_against_random():
    rows = [{"writer": "w", "alpha": 0.0, "n": 2, "brief": "b", "brief_overlap": 0.0, "words": 7,
             "scores": {"g": {**_score(0.7, 0.9), "I_uncopied": 16.2, "I_uncopied_per_token": 0.9, "I_uncopied_budget": 0.1}}}]
    grid.use_copy_rule(rows, "2", budget=160)
    sc = rows[0]["scores"]["g"]
    assert sc["I_uncopied_per_token"] == 0.7 and sc["I_uncopied"] == pytest.approx(11.2)
    assert sc["I_uncopied_budget"] == pytest.approx(11.2 / 160)
    drafts = [{"writer": "w", "alpha": 0.0, "brief": "b", "seed": 0, "text": "the fox the fox the crow"},
              {"writer": "w", "alpha": 0.0, "brief": "b", "seed": 1, "text": "a red kite over the moor at dusk"}]
    b = grid.best_of_vs_random(rows, drafts, {"b": "the fox and the crow"})["w α=0 N=2"]
    assert b["pick"] == {"brief_overlap": 0.0, "words": 7}
    assert b["random"]["brief_overlap"] == pytest.approx((0.6 + 0.0) / 2) and b["no_worse"]   # 3 of 5 bigrams
