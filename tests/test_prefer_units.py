"""Preference tuning's pure parts (issue 21): the brief-disjointness check, the guard filter, the pair builder,
the judge rule, the config, and the GGUF -> peft read-back of the starting adapter. Fast, no model.

    python -m pytest -q tests/test_prefer_units.py
"""
import doctest
import json

import numpy as np
import pytest

from assistant.brief import Brief
from assistant.errors import BadInput
from finetune import draft_stats, judge, prefer, prefer_briefs, prefer_pairs, prefer_config, start_adapter
from finetune.errors import ConfigError
from finetune.prefer_briefs import TrainingBrief

REF = {"brief_overlap": 0.06, "repetition_rate": 0.01, "distinct_2": 0.957}   # the grid's base α 0 N 1, rounded


@pytest.mark.parametrize("mod", [prefer, prefer_briefs, prefer_pairs, judge, prefer_config, start_adapter, draft_stats])
def test_worked_examples(mod):
    assert doctest.testmod(mod).failed == 0


# ---- disjointness ---------------------------------------------------------------------------------
def _files(tmp_path):
    eb = tmp_path / "briefs.jsonl"
    eb.write_text(json.dumps({"id": "br-01", "genre": "g", "task": "Write the opening paragraph of a story",
                              "intent": "Show a widowed ferry pilot's grief through her late husband's thermos",
                              "audience": "Adult readers", "world": "The ferry crosses Lake Orrin twice a day.",
                              "text_so_far": ""}) + "\n")
    pf = tmp_path / "pairs.jsonl"
    pf.write_text(json.dumps({"id": "p-01", "context": "A lighthouse keeper counts the ships that never come back "
                              "to the harbour at dusk"}) + "\n")
    return [eb], [pf]


def test_disjointness_flags_close_briefs_ids_and_copies(tmp_path):
    eb, pf = _files(tmp_path)
    clean = TrainingBrief("tb-001", "g", Brief(task="Write a limerick about a goat", audience="Children aged 6"), "x:1")
    close = TrainingBrief("tb-002", "g", Brief(task="Continue the scene", intent="A lighthouse keeper counts the "
                                               "ships that never come back"), "x:2")
    same_id = TrainingBrief("br-01", "g", Brief(task="Write about rain on tin roofs in March"), "x:3")
    copied = TrainingBrief("tb-004", "g", Brief(task="Write the opening paragraph of a story",
                                                intent="Show a widowed ferry pilot's grief through her late husband's "
                                                "thermos", audience="Adult readers",
                                                world="The ferry crosses Lake Orrin twice a day."), "x:4")
    d = prefer_briefs.disjointness([clean, close, same_id, copied], eb, pf)
    text = "\n".join(d["problems"])
    assert "tb-001" not in text
    assert "tb-002 shares" in text and "pair p-01" in text
    assert "id 'br-01' is an evaluation id" in text
    assert "tb-004 repeats an evaluation text" in text
    assert d["worst"][0][0] == 1.0


def test_disjointness_limit_is_30_percent(tmp_path):
    eb, pf = _files(tmp_path)
    # 10 bigrams, 3 shared with the pair context ("a lighthouse keeper counts"): 30 % is allowed, 40 % is not
    ok = TrainingBrief("tb-1", "g", Brief(task="a lighthouse keeper counts sheep in the dry hills every night"), "x:1")
    over = TrainingBrief("tb-2", "g", Brief(task="a lighthouse keeper counts the ships in hills every night"), "x:2")
    context = json.loads(pf[0].read_text())["context"]
    assert prefer_briefs.shared_share(ok.brief.text(), context) == pytest.approx(0.3)
    d = prefer_briefs.disjointness([ok, over], eb, pf)
    shares = {tid: share for share, tid, _ in d["worst"]}
    assert shares["tb-1"] <= 0.30 < shares["tb-2"]
    assert [p for p in d["problems"] if "tb-2" in p] and not [p for p in d["problems"] if "tb-1" in p]


def test_brief_file_problems_are_listed(tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text('{"id": "tb-1", "genre": "g", "task": "", "intent": "", "audience": "", "world": "", '
                 '"text_so_far": ""}\nnot json\n{"id": "tb-3"}\n')
    with pytest.raises(ConfigError) as e:
        prefer_briefs.load_brief_file(f)
    assert "3 problem(s)" in str(e.value) and "b.jsonl:2" in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        prefer_briefs.load_brief_file(tmp_path / "missing.jsonl")


def test_spread_counts():
    bs = [TrainingBrief(f"t{i}", g, Brief(task=t, audience="Children aged 5", text_so_far=s), "f.jsonl:1")
          for i, (g, t, s) in enumerate([("horror", "Write the opening", ""), ("horror", "Continue the scene", "x"),
                                         ("poem", "Revise this stanza", "y")])]
    s = prefer_briefs.spread(bs)
    assert s["genres"] == {"horror": 2, "poem": 1}
    assert s["task_kinds"] == {"opening": 1, "continuation": 1, "revision": 1}
    assert s["with_text_so_far"] == pytest.approx(2 / 3) and s["sources"] == {"f.jsonl": 3}


# ---- guard filter ---------------------------------------------------------------------------------
def _draft(seed, text, reward):
    return {"brief": "b", "seed": seed, "text": text, "reward": reward}


BRIEF = "The ferry crosses Lake Orrin twice a day. Marit pilots it."
FRESH = [("The wheel was cold under her palms and the gulls argued over nothing at all while rain came "
          "sideways off the water, steady, grey, patient as a debt that would be paid in its own time.")] * 3


def test_guard_filter_fails_restatement_repetition_length_and_empty():
    restating = "The ferry crosses Lake Orrin twice a day and Marit pilots it, the ferry crosses Lake Orrin daily."
    loop = "the gull cried and the gull cried and the gull cried and the gull cried and the gull cried once more."
    short = "Cold wheel."
    ds = [_draft(0, FRESH[0], 0.3), _draft(1, FRESH[0].replace("gulls", "terns"), 0.25), _draft(2, restating, 0.9),
          _draft(3, loop, 0.5), _draft(4, short, 0.8), _draft(5, "", None)]
    out = prefer_pairs.check_drafts(ds, BRIEF, REF)
    fails = {d["seed"]: d["fails"] for d in out}
    assert fails[0] == [] and fails[1] == []
    assert "brief_overlap" in fails[2]
    assert "repetition_rate" in fails[3] and "distinct_2" in fails[3]
    assert "words" in fails[4]
    assert "no passage" in fails[5] and "words" in fails[5]
    words = sorted(d["words"] for d in out)
    assert out[0]["median_words"] == (words[2] + words[3]) / 2
    # the limits are the grid's GUARDS relative to the reference, not a copy of them
    assert prefer_pairs.PASSAGE_GUARDS == ("brief_overlap", "repetition_rate", "distinct_2")
    assert draft_stats.GUARDS["brief_overlap"] == ("<=", 0.03)


def test_failing_draft_is_never_chosen():
    ds = prefer_pairs.check_drafts([_draft(0, "Cold wheel.", 5.0), _draft(1, FRESH[0], 0.1), _draft(2, FRESH[0], 0.2)],
                                   BRIEF, REF)
    pick = prefer_pairs.pick_pair(ds, 0.05)
    assert pick["chosen"]["seed"] == 2 and pick["rejected"]["seed"] == 0 and pick["why"] == "fails words"
    restating = "The ferry crosses Lake Orrin twice a day and Marit pilots it, the ferry crosses Lake Orrin daily."
    none = prefer_pairs.pick_pair(prefer_pairs.check_drafts([_draft(0, restating, 5.0), _draft(1, "", None)],
                                                           BRIEF, REF), 0.05)
    assert none["chosen"] is None and none["why"] == "no draft passes the guards"


def test_guard_reference_from_the_committed_grid_report():
    rep = json.loads(open("eval/results/generate-grid-lockstep/report.json", encoding="utf-8").read())
    ref = prefer_pairs.guard_reference(rep, prefer_config.PreferConfig().guard_reference)
    assert set(ref) == set(prefer_pairs.PASSAGE_GUARDS) and 0 < ref["brief_overlap"] < 0.2
    with pytest.raises(ConfigError, match="no setting"):
        prefer_pairs.guard_reference(rep, "nobody α=9 N=9")


# ---- pair builder ---------------------------------------------------------------------------------
def test_pair_builder_margin_and_order():
    ds = [{"seed": s, "reward": r, "fails": []} for s, r in [(0, 0.40), (1, 0.30), (2, 0.36)]]
    p = prefer_pairs.pick_pair(ds, 0.05)
    assert (p["chosen"]["seed"], p["rejected"]["seed"]) == (0, 1) and p["why"] == "reward lower by 0.100"
    assert prefer_pairs.pick_pair(ds, 0.2)["rejected"] is None
    assert prefer_pairs.pick_pair(ds[:1], 0.0)["why"] == "one draft only"
    tie = [{"seed": 1, "reward": 0.4, "fails": []}, {"seed": 0, "reward": 0.4, "fails": []}]
    assert prefer_pairs.pick_pair(tie, 0.0)["chosen"]["seed"] == 0    # ties: the lower seed, as ranking.rank


def test_build_counts_and_watch():
    drafts = {"a": [_draft(0, FRESH[0], 0.5), _draft(1, FRESH[0].replace("cold", "warm"), 0.2),
                    _draft(2, "Cold wheel.", 0.9)],
              "b": [_draft(0, FRESH[0], 0.3), _draft(1, FRESH[0].replace("grey", "blue"), 0.29)]}
    data = prefer_pairs.build(drafts, {"a": BRIEF, "b": BRIEF}, REF, 0.05)
    c = data["counts"]
    assert (c["briefs"], c["drafts"], c["briefs_with_chosen"], c["pairs"]) == (2, 5, 2, 1)
    assert c["pairs_rejected_by_guard"] == 1 and c["fails_by_guard"]["words"] == 1
    assert data["pairs"][0]["chosen"]["seed"] == 0 and data["pairs"][0]["rejected"]["seed"] == 2
    w = prefer_pairs.watch(data["checked"], data["picks"])
    assert w["n_drafts"] == 5 and w["share_passing"] == pytest.approx(0.8)
    assert w["chosen"]["reward"] == pytest.approx(0.4) and w["all"]["n"] == 5


# ---- judge rule, configs, GGUF read-back ------------------------------------------------------------
def test_judge_rule_on_the_committed_pair_report():
    rep = json.loads(open("eval/results/pairs-shipped/report.json", encoding="utf-8").read())
    j = judge.choose_judge(rep)
    lit = rep["groups"]["literary"]["delta_delta"]
    ok = {n: d["mean_uncopied"] for n, d in lit.items() if d["wilcoxon_p_uncopied"] < judge.ALPHA and d["mean_uncopied"] > 0}
    assert j.name in ok and ok[j.name] >= max(ok.values()) - judge.TIE_BITS
    assert j.adapter == next(a["path"] for a in rep["adapters"] if a["name"] == j.name)
    none = {"groups": {"literary": {"delta_delta": {"x": {"mean_uncopied": -0.1, "wilcoxon_p_uncopied": 0.9}}}},
            "adapters": [{"name": "x", "path": "x.gguf"}]}
    assert judge.choose_judge(none).adapter is None
    with pytest.raises(ConfigError):
        judge.choose_judge({})


def test_committed_configs_parse():
    dpo = prefer_config.PreferConfig.load("finetune/configs/prefer-dpo.toml")
    rft = prefer_config.PreferConfig.load("finetune/configs/prefer-rft.toml")
    assert (dpo.recipe, rft.recipe) == ("dpo", "rft") and dpo.beta > 0 and dpo.samples == rft.samples
    assert dpo.out_dir != rft.out_dir and dpo.start_adapter == "models/cqa-passage/adapter.gguf"
    assert (dpo.max_tokens, dpo.temperature) == (160, 0.8)     # the grid's budget and sampler
    with pytest.raises(ConfigError, match="did you mean 'beta'"):
        prefer_config.PreferConfig.load(_toml(dpo, "betta = 0.2"))
    assert dpo.train_config().target == "passage"


def test_writer_and_judge_run_only_on_weights_the_fidelity_gate_passed(tmp_path):
    """The allowed weights are read from the committed gate report: what it refused (Q8_0) is refused here."""
    import json
    gate = json.loads(prefer_config.FIDELITY.read_text())
    assert prefer_config.allowed_weights() == ("served", "shipped", *gate["passing"])
    assert "Q8_0" not in gate["passing"]
    with pytest.raises(ConfigError, match="weights: must be served, shipped, .* got 'Q8_0'"):
        prefer_config.PreferConfig(weights="Q8_0")
    fake = tmp_path / "report.json"
    fake.write_text(json.dumps({"passing": ["F16"]}))
    assert prefer_config.allowed_weights(fake) == ("served", "shipped", "F16")
    assert prefer_config.allowed_weights(tmp_path / "none.json") == ("served", "shipped")


def _toml(cfg, extra):
    import tempfile
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(cfg.to_toml() + extra + "\n")
    f.close()
    return f.name


def test_gguf_adapter_reads_back_into_peft_order(tmp_path):
    """peft pairs -> GGUF (the export's writer) -> peft pairs again: the same matrices, q/k rows included."""
    from assistant import catalog
    from finetune import lora_gguf

    base = catalog.resolve("smollm2-135m")
    info = lora_gguf.BaseInfo.read(base.path)
    rng = np.random.default_rng(0)
    d = 576
    pairs = {"model.layers.0.self_attn.q_proj": (rng.normal(size=(4, d)), rng.normal(size=(d, 4))),
             "model.layers.0.self_attn.k_proj": (rng.normal(size=(4, d)), rng.normal(size=(192, 4))),
             "model.layers.3.mlp.down_proj": (rng.normal(size=(4, 1536)), rng.normal(size=(d, 4)))}
    pairs = {k: (a.astype(np.float32), b.astype(np.float32)) for k, (a, b) in pairs.items()}
    tensors = lora_gguf.gguf_tensors(pairs, info)
    out = lora_gguf.write(lora_gguf.LoraAdapter(info.arch, 8.0, "t", {"name": "smollm2-135m"}, tensors), tmp_path / "a.gguf")
    back, alpha = start_adapter.peft_pairs(out, base.path)
    assert alpha == 8.0 and set(back) == set(pairs)
    for k, (a, b) in pairs.items():
        np.testing.assert_array_equal(back[k][0], a)
        np.testing.assert_array_equal(back[k][1], b)
    assert not np.array_equal(tensors["blk.0.attn_q.weight"][1], pairs["model.layers.0.self_attn.q_proj"][1])


def test_the_grid_takes_the_new_writers_as_passage_writers():
    """`python -m eval grid --passage passage=... dpo=... rft=...`: each new adapter is one more writer that
    writes the passage at once, on the same briefs, seeds, alphas and N as the others."""
    import argparse

    from eval.grid_report import writers_from_args

    a = argparse.Namespace(cqa=[], passage=["passage=models/cqa-passage/adapter.gguf",
                                            "dpo=models/cqa-passage/adapter.gguf"])
    ws, _ = writers_from_args(a, None)
    assert [(w.name, w.notes) for w in ws] == [("base", True), ("passage", False), ("dpo", False)]


def test_command_line(capsys):
    from finetune.__main__ import main

    assert main(["prefer", "--print-config", "--recipe", "rft", "--beta", "0.2"]) == 0
    out = capsys.readouterr().out
    assert 'recipe = "rft"' in out and "beta = 0.2" in out
    assert main(["prefer-briefs"]) == 0
    assert "disjoint from the evaluation sets" in capsys.readouterr().out
    assert main(["prefer", "--config", "nowhere.toml", "--stage", "briefs"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_watch_beside_the_outside_reader(tmp_path, capsys):
    """eval prefer-watch: the reward's change next to the grid reader's change for the same writer."""
    from eval import prefer_watch
    from eval.__main__ import main

    assert doctest.testmod(prefer_watch).failed == 0
    rounds = {"0": {"share_passing": 0.5, "all": {"reward": 0.40, "brief_overlap": 0.08, "words": 118,
                                                  "repetition_rate": 0.0, "distinct_2": 0.96}},
              "1": {"share_passing": 0.4, "all": {"reward": 0.55, "brief_overlap": 0.10, "words": 110,
                                                  "repetition_rate": 0.01, "distinct_2": 0.95}}}
    summary = {f"{w} α={a:g} N=1": {"readers": {"gemma": {"I_uncopied_per_token": i}}}
               for w, a, i in [("passage", 0, 0.289), ("passage", 0.5, 0.477), ("dpo", 0, 0.280), ("dpo", 0.5, 0.49)]}
    # the grid's rows, one pick per brief: at α 0 the new writer reads lower on 5 of 6 briefs, at α 0.5 higher on all
    per_brief = {("passage", 0.0): [0.30, 0.28, 0.31, 0.27, 0.29, 0.28], ("dpo", 0.0): [0.28, 0.27, 0.29, 0.26, 0.28, 0.30],
                 ("passage", 0.5): [0.45, 0.47, 0.48, 0.46, 0.49, 0.50], ("dpo", 0.5): [0.50, 0.52, 0.53, 0.51, 0.54, 0.55]}
    rows = [{"writer": w, "alpha": a, "n": 1, "brief": f"b{i}", "scores": {"gemma": {"I_uncopied_per_token": x}}}
            for (w, a), xs in per_brief.items() for i, x in enumerate(xs)]
    grid = {"summary": summary, "choice_reader": "gemma", "rows": rows}
    got = prefer_watch.table({"dpo": {"rounds": rounds}}, grid, "passage")
    assert got[0]["reward"] == (0.40, 0.55) and got[0]["reader α=0"] == (0.289, 0.280)
    assert got[0]["follows"] == "no"          # the reward rose, the outside reader did not follow
    assert got[0]["p α=0"] > 0.5 and got[0]["p α=0.5"] == pytest.approx(1 / 64)   # all 6 briefs higher: 1/2^6
    run = tmp_path / "dpo"
    run.mkdir()
    (run / "report.json").write_text(json.dumps({"rounds": rounds}))
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    assert main(["prefer-watch", "--grid", str(tmp_path / "grid.json"), "--run", f"dpo={run}"]) == 0
    out = capsys.readouterr().out
    assert "0.400 → 0.550" in out and "**no**" in out
    model = tmp_path / "cqa-prefer-dpo"           # the committed form: the installed model's manifest
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"recipe": "dpo", "watch": rounds}))
    assert main(["prefer-watch", "--grid", str(tmp_path / "grid.json"), "--run", f"dpo={model}"]) == 0
    assert "0.400 → 0.550" in capsys.readouterr().out
    (model / "manifest.json").write_text(json.dumps({"recipe": "dpo"}))
    with pytest.raises(BadInput, match="no watch rounds"):
        prefer_watch.run([f"dpo={model}"], tmp_path / "grid.json", "passage", None)


def test_watch_on_the_committed_runs_says_what_the_readme_says():
    """The committed watch rounds (models/*/manifest.json) beside the committed grid: DPO's reward rose and the
    outside reader did not follow significantly per token, only per budget token; RFT's reward fell while the
    reader rose (README)."""
    from eval import prefer_watch
    grid = json.loads(open("eval/results/generate-grid-prefer/report.json", encoding="utf-8").read())
    runs = {r: json.loads(open(f"models/cqa-prefer-{r}/manifest.json", encoding="utf-8").read()) for r in ("dpo", "rft")}
    rows = {row["recipe"]: row for row in prefer_watch.table({r: {"rounds": m["watch"]} for r, m in runs.items()},
                                                              grid, "passage")}
    dpo, rft = rows["dpo"], rows["rft"]
    assert dpo["reward"][1] > dpo["reward"][0] and dpo["follows"] == "n.s." and dpo["p α=0"] >= 0.05
    assert dpo["p budget α=0"] < 0.05        # per budget token (the reward's quantity: length pays) it does follow
    assert rft["reward"][1] < rft["reward"][0] and rft["follows"] == "no"
