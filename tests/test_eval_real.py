"""The pairs pipeline on the real embedded model (SmolLM2-135M through llama.cpp), no mocks."""
import json
import math

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from assistant import catalog  # noqa: E402
from eval.pair_eval import evaluate_pairs  # noqa: E402
from eval.pairs import DATA, load_pairs  # noqa: E402
from eval.settings import Settings  # noqa: E402

try:
    catalog.resolve("smollm2-135m")
except catalog.ModelUnavailable as e:  # pragma: no cover - the package is a requirement
    pytest.skip(str(e), allow_module_level=True)


# Two short pairs (a real run, kept under 30 s on a busy 2-core machine); the shipped set is timed by hand.
PAIRS = [
    {"id": "t-lit", "group": "literary", "axis": "cliche",
     "context": "A short story for adults. A lighthouse keeper, alone for years, finds a child's shoe on the rocks.",
     "high": "The shoe was red, the buckle rusted shut, and it was dry inside. He set it on the lamp-room sill, "
             "facing the sea, the way one leaves a light on.",
     "degraded": "The shoe was red and very old, and it made his heart skip a beat. He put it on the sill, and a "
                 "wave of sadness washed over him like never before."},
    {"id": "t-fac", "group": "factual", "axis": "audience",
     "context": "Instructions for home owners: reset the Brewmont CM-40 coffee maker by holding Brew for 5 seconds.",
     "high": "To reset the machine, press and hold the Brew button for five seconds, until the light blinks twice. "
             "Release it; the clock returns to 12:00.",
     "degraded": "To perform a reset, actuate the Brew momentary switch for a 5 s interval until the LED indicator "
                 "cycles twice. Release; the RTC reinitialises to 12:00."},
]


def two_pairs(tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    return path, load_pairs([path])[1]


def tiny_adapter(path, rank=2, alpha=4.0, seed=0):
    """A random LoRA on every ffn_down of the embedded model, written the way finetune/export.py does."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for n in range(30):                       # SmolLM2-135M: 30 blocks, d_model 576, d_ff 1536
        w.add_tensor(f"blk.{n}.ffn_down.weight.lora_a", (rng.standard_normal((rank, 1536)) * 0.02).astype(np.float32))
        w.add_tensor(f"blk.{n}.ffn_down.weight.lora_b", (rng.standard_normal((576, rank)) * 0.02).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_two_pairs_with_the_embedded_model_and_an_adapter(tmp_path):
    from assistant.engine import Engine
    from assistant.scoring import score_text

    path, fac = two_pairs(tmp_path)
    adapter = tiny_adapter(tmp_path / "tiny.gguf")
    # One thread: on a busy 2-core machine llama.cpp's spinning worker threads slow down several-fold.
    settings = Settings(threads=1, cache=tmp_path / "cache.jsonl", progress=False)
    report, paths = evaluate_pairs([path], tmp_path / "out", settings, adapters=[f"tiny={adapter}"])
    assert all(p.exists() for p in paths)
    assert report["variants"] == ["base", "tiny"] and set(report["groups"]) == {"literary", "factual"}
    assert report["model"]["sha256"] == catalog.resolve("smollm2-135m").sha256
    assert report["adapters"][0]["sha256"] == catalog.file_sha256(adapter)
    for row in report["pairs"]:
        for v in ("base", "tiny"):
            for k in ("high", "degraded"):
                assert math.isfinite(row["I"][v][k]) and math.isfinite(row["I_uncopied"][v][k])
        assert row["n_tokens"]["high"] > 20
        assert row["I"]["tiny"]["high"] != row["I"]["base"]["high"]     # the adapter is applied
        assert abs(row["I"]["tiny"]["high"] - row["I"]["base"]["high"]) < 0.5
    dd = report["groups"]["literary"]["delta_delta"]["tiny"]
    assert dd["n"] == 1 and math.isfinite(dd["mean"]) and dd["wilcoxon_p"] is None   # one pair: no test
    # The reordered passes (shared KV cache) give the app's numbers: score_text called plainly.
    eng = Engine.load(n_threads=1)
    plain = score_text(eng, None, fac.degraded, context=fac.context, template="chat").score
    got = report["pairs"][1]["I"]["base"]["degraded"]
    assert got == pytest.approx(plain.I_per_token, abs=1e-3)
    # Both copied-span rules are measured on the real scores; the 2-word one is the score's own.
    scored = score_text(eng, None, fac.degraded, context=fac.context, template="chat")
    rules = scored.copy_rules()
    assert rules["2"]["I_uncopied"] == pytest.approx(scored.score.I_uncopied, abs=1e-9)
    assert rules["3"]["n_copied"] <= rules["2"]["n_copied"] == scored.score.n_copied
    cr = report["copy_rules"]["tiny"]
    assert report["copy_rule_words"] == 2 and set(cr) == {"2", "3"} and cr["2"]["base_mean"] == pytest.approx(
        report["groups"]["literary"]["mean_delta_I_uncopied"]["base"], abs=1e-9)
    # A re-run is served from the cache and gives identical numbers.
    again, _ = evaluate_pairs([path], tmp_path / "out2", Settings(cache=tmp_path / "cache.jsonl", progress=False),
                              adapters=[f"tiny={adapter}"])
    assert [again["timing"][v]["texts_cached"] for v in ("base", "tiny")] == [4, 4]
    assert again["pairs"] == report["pairs"]


@pytest.mark.slow
def test_generate_with_the_embedded_model(tmp_path):
    from eval.__main__ import main

    out = tmp_path / "gen"
    assert main(["generate", "--briefs", str(DATA / "briefs.jsonl"), "--limit", "1", "--n", "1", "--max-tokens",
                 "24", "--reader", "smollm2-135m", "--threads", "1", "--no-cache", "--quiet", "--out", str(out)]) == 0
    res = json.loads((out / "generate.json").read_text())
    [d] = res["drafts"]
    assert d["text"].strip() and 0 < d["n_tokens"] <= 24
    assert math.isfinite(d["scores"]["smollm2-135m"]["I_per_token"])
    assert (out / "transcript.md").read_text().count("| 0 |") == 1


@pytest.mark.slow
def test_crosscheck_llama_cpp_against_transformers(tmp_path):
    pytest.importorskip("transformers")
    from eval.__main__ import main

    out = tmp_path / "cc"
    assert main(["crosscheck", "--texts", "2", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    a = json.loads((out / "crosscheck.json").read_text())["agreement"]
    assert a["n_texts"] == 2 and a["mad_bits"] < 0.2 and a["pearson_r_tokens"] > 0.99
