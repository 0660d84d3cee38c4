"""The pairs pipeline on a fake reader: report format, statistics wiring, cache, CLI errors and settings."""
import json
from pathlib import Path

import pytest

from eval.__main__ import main
from eval.pair_eval import evaluate_pairs
from eval.report import markdown
from eval.settings import Settings
from eval.variants import Variant

# text -> (I per token under the base, extra I per token under the adapter); contexts are irrelevant.
TABLE = {}
PAIRS = []
for i, (group, axis, bonus) in enumerate([("literary", "cliche", 1.0), ("literary", "audience", 2.0),
                                          ("literary", "cliche", 3.0), ("factual", "reality", 0.0),
                                          ("factual", "craft", 0.0)]):
    high, degraded = f"high passage number {i} with words", f"degraded passage number {i} with words"
    TABLE[high] = (0.5 + i, bonus)      # base ΔI = +0.5 for every pair
    TABLE[degraded] = (float(i), 0.0)
    PAIRS.append({"id": f"p{i}", "group": group, "axis": axis, "context": f"context {i}", "high": high,
                  "degraded": degraded})

VARIANTS = [Variant("base", "fake", "/fake.gguf", "a" * 64),
            Variant("epoch5", "fake", "/fake.gguf", "a" * 64, "/e5.gguf", "b" * 64)]


class FakeReader:
    opened = []     # the adapter of every reader opened (None: the base)

    def __init__(self, adapter):
        self.adapter = adapter
        FakeReader.opened.append(adapter)

    def score_texts(self, brief, context, texts):
        assert brief is None and context.startswith("context ")
        out = []
        for t in texts:
            base, bonus = TABLE[t]
            I = base + (bonus if self.adapter else 0.0)
            out.append({"n_tokens": 5, "n_copied": 1, "I_per_token": I, "I_uncopied_per_token": I / 2,
                        "H_X_per_token": 6.0, "H_X_given_Y_per_token": 6.0 - I})
        return out

    def close(self):
        """A fake holds nothing to free."""


class FakeReaders:
    """Where the fake readers run: here, like eval.readers.LocalReaders."""
    n_threads = 1

    def open(self, model, adapter, template):
        assert template == "chat"
        return FakeReader(adapter)


@pytest.fixture
def pair_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    return path


def run(pair_file, tmp_path, **kw):
    return evaluate_pairs([pair_file], tmp_path / "out", Settings(cache=tmp_path / "cache.jsonl", progress=False),
                          FakeReaders(), variants=VARIANTS, **kw)


def test_report_shape_and_numbers(pair_file, tmp_path):
    FakeReader.opened.clear()
    report, paths = run(pair_file, tmp_path)
    assert [p.name for p in paths] == ["report.json", "report.md", "delta.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths[0].read_text())
    assert data["variants"] == ["base", "epoch5"]
    lit, fac = data["groups"]["literary"], data["groups"]["factual"]
    assert lit["n"] == 3 and fac["n"] == 2
    assert lit["validation_rate"] == {"base": 1.0, "epoch5": 1.0}
    assert lit["mean_delta_I"]["base"] == pytest.approx(0.5)
    assert lit["mean_delta_I"]["epoch5"] == pytest.approx(2.5)
    assert lit["mean_delta_I_uncopied"]["base"] == pytest.approx(0.25)
    dd = lit["delta_delta"]["epoch5"]                  # Δ(ΔI) = 1, 2, 3: mean 2, d_z 2, p = 1/8
    assert dd["n"] == 3 and dd["mean"] == pytest.approx(2.0)
    assert dd["cohens_d"] == pytest.approx(2.0) and dd["wilcoxon_p"] == pytest.approx(0.125)
    assert dd["mean_uncopied"] == pytest.approx(1.0) and dd["cohens_d_uncopied"] == pytest.approx(2.0)
    assert fac["delta_delta"]["epoch5"] == {"n": 2, "mean": 0.0, "wilcoxon_p": None, "cohens_d": None,
                                            "mean_uncopied": 0.0, "wilcoxon_p_uncopied": None,
                                            "cohens_d_uncopied": None}
    assert set(lit["axes"]) == {"cliche", "audience"} and lit["axes"]["cliche"]["n"] == 2
    assert lit["axes"]["cliche"]["delta_delta"]["epoch5"]["mean"] == pytest.approx(2.0)
    p0 = data["pairs"][0]
    assert {"id", "group", "axis", "I", "I_uncopied", "delta_I", "delta_I_uncopied"} <= set(p0)
    assert p0["I"] == {"base": {"high": 0.5, "degraded": 0.0}, "epoch5": {"high": 1.5, "degraded": 0.0}}
    assert data["template"] == "chat"
    assert data["model"]["sha256"] == "a" * 64
    assert data["adapters"] == [{"name": "epoch5", "path": "/e5.gguf", "sha256": "b" * 64}]
    assert {"platform", "cpu_count"} <= set(data["machine"])
    assert data["timing"]["base"]["texts_scored"] == 10
    assert data["pairs_files"][0]["lines"] == 5
    md = paths[1].read_text()
    assert "## literary" in md and "template: **chat**" in md and "| epoch5 | 3 | +2.000 | 0.125 | +2.00 |" in md
    assert FakeReader.opened == [None, "/e5.gguf"]     # one load per variant: the base, then the adapter
    assert data["machine"]["n_threads"] == 1 and data["cache"] == str(tmp_path / "cache.jsonl")


def test_rerun_is_served_from_the_cache(pair_file, tmp_path):
    run(pair_file, tmp_path)
    FakeReader.opened.clear()
    report, _ = run(pair_file, tmp_path)
    assert FakeReader.opened == []                     # nothing new: no model is loaded
    assert report["timing"]["epoch5"]["texts_cached"] == 10
    assert report["groups"]["literary"]["delta_delta"]["epoch5"]["mean"] == pytest.approx(2.0)


def test_markdown_handles_base_only(pair_file, tmp_path):
    report, paths = evaluate_pairs([pair_file], tmp_path / "o", Settings(progress=False), FakeReaders(),
                                   variants=VARIANTS[:1])
    assert report["groups"]["literary"]["delta_delta"] == {}
    assert "Wilcoxon" not in markdown(report).split("## literary")[1].split("##")[0]


@pytest.mark.parametrize("args, message", [
    (["pairs", "--pairs", "nope.jsonl"], "error: nope.jsonl: file not found"),
    (["pairs", "--adapter", "e5"], "error: --adapter 'e5': write it as NAME=PATH"),
    (["pairs", "--adapter", "e5=missing.gguf"], "error: --adapter 'e5=missing.gguf': missing.gguf does not exist"),
    (["pairs", "--model", "no-such-model"], "error: unknown model 'no-such-model'"),
])
def test_cli_errors_are_one_line_and_exit_1(args, message, capsys, pair_file):
    if "--pairs" not in args:
        args = args + ["--pairs", str(pair_file)]
    assert main(args + ["--no-cache", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert "Traceback" not in err and err.count("\n") == 1


ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted([*ROOT.glob("eval/results/*/report.json"), *ROOT.glob("models/*/eval/report.json")])


@pytest.mark.parametrize("path", [p for p in COMMITTED if not {"summary", "gate"} & set(json.loads(p.read_text()))],
                         ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_committed_pair_reports_render_as_committed(path):
    """report.md is a function of report.json: the committed Markdown comes back byte for byte."""
    assert markdown(json.loads(path.read_text(encoding="utf-8"))) == (path.parent / "report.md").read_text(
        encoding="utf-8")


@pytest.fixture
def captured(monkeypatch):
    """What `python -m eval pairs` hands evaluate_pairs (settings, readers), without scoring anything."""
    import eval.pair_eval
    got = {}

    def fake(files, out, settings, readers, **kw):
        got.update(settings=settings, readers=readers, **kw)
        return {"groups": {}, "variants": [], "timing": {}}, []
    monkeypatch.setattr(eval.pair_eval, "evaluate_pairs", fake)
    return got


def test_the_entry_point_reads_the_environment_into_settings(captured, tmp_path):
    from eval.ray_readers import RayReaders
    from eval.readers import LocalReaders

    env = {"CQA_THREADS": "3", "CQA_CACHE": str(tmp_path), "CQA_MODEL": "gemma3-270m"}
    assert main(["pairs", "--quiet"], env=env) == 0
    s = captured["settings"]
    assert (s.threads, s.cache, s.model, s.template, s.progress) == (3, tmp_path / "eval-scores.jsonl",
                                                                      "gemma3-270m", "chat", False)
    assert captured["readers"] == LocalReaders(3)
    # a flag wins over its variable; --no-cache keeps nothing; --ray hands Ray readers down (none started here)
    assert main(["pairs", "--threads", "1", "--no-cache", "--ray", "auto", "--model", "m.gguf"], env=env) == 0
    s = captured["settings"]
    assert (s.threads, s.cache, s.model) == (1, None, "m.gguf") and captured["readers"] == RayReaders("auto")
    assert main(["pairs"], env={}) == 0
    assert captured["settings"].threads is None and captured["settings"].model is None
    assert captured["settings"].cache.name == "eval-scores.jsonl"


def test_a_bug_keeps_its_traceback(monkeypatch):
    import eval.pair_eval

    def bug(*a, **kw):
        raise KeyError("a bug, not the user's doing")
    monkeypatch.setattr(eval.pair_eval, "evaluate_pairs", bug)
    with pytest.raises(KeyError, match="a bug"):
        main(["pairs", "--quiet"], env={})


def test_the_committed_fidelity_report_renders_as_committed():
    """eval/results/fidelity: report.md is a function of report.json, and its gate is the one applied as code."""
    from eval import fidelity
    folder = ROOT / "eval" / "results" / "fidelity"
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert fidelity.markdown(report) == (folder / "report.md").read_text(encoding="utf-8")
    assert report["passing"] == [c for c in report["copies"] if c != fidelity.SHIPPED and fidelity.passes(report, c)]
