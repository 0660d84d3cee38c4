"""A tiny real fine-tune, its export, and the check that llama.cpp applies the adapter as peft does.

    python -m pytest tests/test_finetune_train_export.py -q -s     # -s prints the measured numbers

One base load (transformers, ~20-40 s) serves the module; a tiny run trains 2 epochs of one
optimizer step each on 3 short annotations at a high learning rate (so the adapter moves the
log-probs measurably), then exports GGUF adapters, a merged f16 GGUF and a Q8_0 quantization.

Tolerances, and why: llama.cpp multiplies Q4_1 weights with activations quantized to 8 bits, so
even the base model's log-probs differ from transformers' fp32 ones by ~0.1 nat/token. The adapter's
*shift* of the log-probs must nevertheless agree: Pearson r > 0.7 between the shifts measured in
the two runtimes (docs/design.md §9.3: r ~ 0.85 with all seven projections; here ~0.95+). The q/k
test is the sharp one: without llama.cpp's q/k row permutation of lora_B the correlation collapses
(docs/design.md §9.3: r ~ -0.24; here ~0.1), so r > 0.7 there proves the permutation is right.

Threads: 1 by default (CQA_TEST_THREADS overrides). On 2 cores shared with other work, torch's and
llama.cpp's 2 threads spin-wait for each other: this module took 500 s with 2 threads and 97 s with 1
at load average ~4; on an idle machine 2 threads would save perhaps a third.
"""
import copy
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from assistant import adapter_meta  # noqa: E402
from assistant.engine import Engine  # noqa: E402
from finetune import annotations, crosscheck, export, merge, render, train  # noqa: E402
from finetune.config import TrainConfig  # noqa: E402
from finetune.model import add_lora, load_adapter, load_base  # noqa: E402

VALID = Path(__file__).parent / "data" / "finetune_valid.jsonl"
THREADS = int(os.environ.get("CQA_TEST_THREADS", "1"))   # see the module docstring
TINY = dict(data=str(VALID), epochs=2, max_steps_per_epoch=1, batch_size=1, grad_accum=2, max_seq_len=160,
            truncate=True, lr=5e-3, warmup_steps=0, lora_r=8, lora_alpha=16.0, lora_dropout=0.0, threads=THREADS)
MIN_R = 0.7       # shifts in llama.cpp vs transformers (see the module docstring)
MAX_TOKENS = 64   # scored tokens per sample


@pytest.fixture(scope="module")
def loaded():
    import torch
    torch.set_num_threads(THREADS)
    return load_base("smollm2-135m")


def fresh(loaded):
    model, tokenizer, resolved = loaded
    return copy.deepcopy(model), tokenizer, resolved


@pytest.fixture(scope="module")
def run(loaded, tmp_path_factory):
    cfg = TrainConfig(out_dir=str(tmp_path_factory.mktemp("run") / "cqa"), **TINY)
    train.train(cfg, progress=False, loaded=fresh(loaded))
    return cfg


@pytest.fixture(scope="module")
def base_engine():
    return Engine.load("smollm2-135m", n_threads=THREADS)


@pytest.fixture(scope="module")
def samples(loaded):
    fmt = render.chat_formatter(loaded[2].path)
    return [(r.prompt, r.completion) for r in (render.render(a, fmt) for a in annotations.load(VALID)[1:4:2])]


def test_run_keeps_every_epoch_and_its_losses(run):
    out = Path(run.out_dir)
    metrics = train.read_json(out / train.METRICS_FILE)["epochs"]
    assert [e["epoch"] for e in metrics] == [0, 1, 2]
    assert metrics[0]["train_loss"] is None and all(e["heldout_loss"] > 0 for e in metrics)
    assert metrics[2]["train_loss"] < metrics[1]["train_loss"]       # it learns
    assert export.epochs_of(out) == [1, 2] and (out / train.CHECKPOINT_FILE).is_file()
    assert train.read_json(out / train.RUN_FILE)["data"]["truncated"] == ["t-001", "t-002", "t-003", "t-004"]
    assert (out / "config.toml").is_file() and TrainConfig.load(out / "config.toml") == run


def test_resume_ends_where_an_uninterrupted_run_ends(run, loaded, tmp_path):
    from safetensors.numpy import load_file

    cfg = replace(run, out_dir=str(tmp_path / "r"), epochs=1)
    train.train(cfg, progress=False, loaded=fresh(loaded))
    with pytest.raises(train.TrainError, match="pass --resume"):
        train.train(replace(cfg, epochs=2), progress=False)
    train.train(replace(cfg, epochs=2), resume=True, progress=False, loaded=fresh(loaded))
    a = load_file(str(Path(run.out_dir) / "epochs/epoch-2/adapter_model.safetensors"))
    b = load_file(str(tmp_path / "r/epochs/epoch-2/adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert train.train(replace(cfg, epochs=2), progress=False) == Path(cfg.out_dir)   # finished: nothing to do


def test_export_writes_llama_cpp_lora_adapters(run):
    from gguf import GGUFReader

    out = Path(run.out_dir)
    manifest = export.export_run(out, export.epochs_of(out))
    path = out / "gguf/epoch-2.gguf"
    assert set(manifest["files"]) == {"epoch-1.gguf", "epoch-2.gguf"}
    assert [e["epoch"] for e in manifest["epochs"]] == [0, 1, 2] and manifest["data"]["n_train"] == 3
    r = GGUFReader(str(path))
    assert r.get_field("general.type").contents() == "adapter"
    assert r.get_field("adapter.type").contents() == "lora"
    assert r.get_field("adapter.lora.alpha").contents() == 16.0
    assert r.get_field("general.architecture").contents() == "llama"
    tensors = {t.name: t for t in r.tensors}
    assert len(tensors) == 30 * 7 * 2
    assert list(tensors["blk.0.attn_k.weight.lora_a"].shape) == [576, 8]     # GGUF lists ne: (in, r)
    assert list(tensors["blk.0.attn_k.weight.lora_b"].shape) == [8, 192]     # peft lora_B is (192, 8)
    assert list(tensors["blk.29.ffn_down.weight.lora_a"].shape) == [1536, 8]
    meta = adapter_meta.read_adapter_base(path)
    assert meta == {"name": "smollm2-135m", "sha256": manifest["base"]["sha256"],
                    "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    mtime = path.stat().st_mtime_ns
    export.export_run(out, [2])                                              # re-run: kept, not rewritten
    assert path.stat().st_mtime_ns == mtime


@pytest.fixture(scope="module")
def exported(run, loaded):
    """Epoch 2 of the tiny run: (peft model in transformers, the same adapter in llama.cpp)."""
    out = Path(run.out_dir)
    export.export_run(out, [2])
    peft_model = load_adapter(copy.deepcopy(loaded[0]), out / "epochs/epoch-2")
    return peft_model, Engine.load("smollm2-135m", lora_path=out / "gguf/epoch-2.gguf", n_threads=THREADS)


def test_llama_cpp_applies_the_trained_adapter_like_peft(exported, base_engine, samples):
    peft_model, adapted = exported
    c = crosscheck.compare(peft_model, base_engine, adapted, samples, MAX_TOKENS)
    print(f"\nall 7 projections, trained: {c}")
    assert c["hf_mean_abs_shift"] > 0.05          # the tiny run moved the model enough to measure
    assert c["pearson_r"] > MIN_R


def test_qk_adapter_needs_the_row_permutation(loaded, base_engine, samples, tmp_path):
    model = add_lora(copy.deepcopy(loaded[0]), 8, 16.0, 0.0, ("q_proj", "k_proj"), seed=0, init_b=False)
    model.save_pretrained(str(tmp_path / "qk"), save_embedding_layers=False)
    res = loaded[2]
    r = {}
    for permute in (True, False):
        path = export.write_adapter(tmp_path / "qk", res.path, res.name, res.sha256, tmp_path / f"{permute}.gguf",
                                    permute=permute)
        r[permute] = crosscheck.compare(model, base_engine, Engine.load("smollm2-135m", lora_path=path, n_threads=THREADS),
                                        samples, MAX_TOKENS)
    print(f"\nq/k only, random lora_B: with permutation {r[True]}\n  without {r[False]}")
    assert r[True]["hf_mean_abs_shift"] > 0.1
    assert r[True]["pearson_r"] > MIN_R
    assert r[False]["pearson_r"] < 0.5


def test_merged_gguf_agrees_with_base_plus_adapter(run, loaded, exported, base_engine, samples, tmp_path):
    peft_model, with_adapter = exported
    f16 = merge.merge(loaded[2].path, Path(run.out_dir) / "epochs/epoch-2", tmp_path / "merged.f16.gguf", "f16")
    q8 = merge.quantize(f16, tmp_path / "merged.Q8_0.gguf", "Q8_0")
    reference = [with_adapter.token_logprobs(p, t).logprobs[:MAX_TOKENS] for p, t in samples]
    for path, max_diff in ((f16, 0.15), (q8, 0.25)):
        merged = Engine.load(str(path), n_threads=THREADS)
        d = float(np.mean([np.abs(merged.token_logprobs(p, t).logprobs[:MAX_TOKENS] - ref).mean()
                           for (p, t), ref in zip(samples, reference)]))
        print(f"\n{path.name}: mean |log-prob difference| to base + adapter in llama.cpp: {d:.3f} nats/token")
        assert d < max_diff
    c = crosscheck.compare(peft_model, base_engine, Engine.load(str(f16), n_threads=THREADS), samples, MAX_TOKENS)
    print(f"merged f16 vs peft in transformers: {c}")
    assert c["pearson_r"] > 0.95 and c["mean_abs_diff_adapted"] < 0.05   # f16 weights: no Q4_1 noise
