"""`python -m finetune prefer` end to end on the real model, with tiny budgets (issue 21): two briefs, 2 drafts of
16 tokens each from the CQA-passage writer through the app's engine, judged, filtered, paired; one DPO step
(TRL) and one RFT step on top of the starting adapter; export; the exported adapter loads in llama.cpp and
writes; the watch samples the trained writer. Also: the starting adapter read back from its GGUF into peft
moves transformers' log-probs as llama.cpp's adapter moves them (so training starts from the served model).

    python -m pytest -q tests/test_prefer_real.py -s      # ~1-2 min on 2 cores, 1 thread
"""
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("trl")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from assistant.engine import Engine  # noqa: E402
from assistant.sampler import Sampler  # noqa: E402
from finetune import crosscheck, lora_gguf, prefer, prefer_train, render  # noqa: E402
from finetune.model import load_base  # noqa: E402
from finetune.prefer_config import PreferConfig  # noqa: E402
from finetune.files import sha256  # noqa: E402
from finetune.train import TrainError  # noqa: E402

THREADS = int(os.environ.get("CQA_TEST_THREADS", "1"))   # see tests/test_finetune_train_export.py
BRIEFS = [
    {"id": "tb-t1", "genre": "fable", "task": "Write the opening of a fable", "intent": "A tortoise who collects "
     "lost buttons learns to give one away", "audience": "Children aged 6 to 8", "world": "A hedge by a lane; "
     "the tortoise is called Mabel", "text_so_far": ""},
    {"id": "tb-t2", "genre": "science fiction", "task": "Continue the scene", "intent": "The engineer realises "
     "the station's clock has been running backwards", "audience": "Adult readers of short science fiction",
     "world": "Relay station Kestrel, orbiting Ceres; one engineer, Ada Brun", "text_so_far": "The alarms had been "
     "quiet for a week."},
]


@pytest.fixture(scope="module")
def loaded():
    import torch
    torch.set_num_threads(THREADS)
    return load_base("smollm2-135m")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("prefer")
    f = d / "briefs.jsonl"
    f.write_text("".join(json.dumps(b) + "\n" for b in BRIEFS))
    return PreferConfig(corpus="", briefs=(str(f),), n_drafts=2, max_tokens=16, margin=0.0, samples=str(d / "s.jsonl"),
                        out_dir=str(d / "dpo"), epochs=1, max_steps=1, grad_accum=1, warmup_steps=0, lr=1e-3,
                        max_seq_len=512, threads=THREADS, watch_drafts=2, install_to=str(d / "installed"))


def test_prefer_dpo_end_to_end(tiny, loaded):
    r = prefer.run(tiny, progress=False, loaded=loaded)
    assert r["n_briefs"] == 2 and r["judge"]["adapter"]
    c = r["counts"]
    assert c["drafts"] == 4 and c["pairs"] >= 1, c
    m = r["metrics"]
    assert m["recipe"] == "dpo" and m["n_pairs"] == c["pairs"] and m["prompt_tokens_as_app"]
    assert math.isclose(m["steps"][0]["loss"], math.log(2), abs_tol=1e-3)   # reference = the starting adapter
    out = Path(tiny.out_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("judge", "reward", "pairs", "beta", "data", "device", "wall_time_s", "start_adapter", "watch"):
        assert manifest[key] is not None, key
    assert set(manifest["data"]["files"]) == {"drafts.jsonl", "pairs.jsonl", "chosen.jsonl"}
    assert manifest["sampled_on_weights"] == prefer.weights_of(tiny)     # "served": what the app serves on this CPU
    assert set(r["watch"]["rounds"]) == {"0", "0 chosen (training targets)", "1"}
    assert manifest["watch_run"]["samples_sha256_after"] == sha256(tiny.samples)   # the watch's drafts included
    assert (out / "report.md").is_file() and (Path(tiny.install_to) / "adapter.gguf").is_file()
    start, trained = lora_gguf.read(Path(tiny.start_adapter)), lora_gguf.read(Path(r["gguf"]))
    assert set(start.tensors) == set(trained.tensors) and trained.alpha == start.alpha
    assert any(not np.allclose(start.tensors[k][1], trained.tensors[k][1]) for k in start.tensors)   # it moved
    eng = Engine.load("smollm2-135m", lora_path=r["gguf"], n_threads=THREADS)
    try:
        draft = eng.complete("Once upon a time", Sampler(max_tokens=6, seed=0))
        assert draft.ids and draft.text
    finally:
        eng.close()
    # a second run finds everything done: no drafts written, no training
    again = prefer.run(tiny, stages=("briefs", "judge", "sample", "pairs", "train"), progress=False, loaded=loaded)
    assert again["metrics"] == m
    with pytest.raises(TrainError, match="other training fields"):   # the same folder with another beta: refused
        prefer.run(tiny.replace(beta=0.5), stages=("train",), progress=False, loaded=loaded)
    # a run stopped after a checkpoint resumes from it: no step is trained twice, the same adapter is saved
    assert [p.name for p in (out / "trl").glob("checkpoint-*")] == ["checkpoint-1"]
    saved = out / "epochs" / "epoch-1" / "adapter_model.safetensors"
    before = load_file(saved)
    shutil.rmtree(out / "epochs")
    (out / "metrics.json").unlink()
    resumed = prefer.run(tiny, stages=("briefs", "judge", "sample", "pairs", "train"), progress=False, loaded=loaded)
    assert resumed["metrics"]["resumed_from"] == "checkpoint-1" and resumed["metrics"]["steps"] == m["steps"]
    after = load_file(saved)
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_a_stopped_dpo_run_resumes_from_its_checkpoint(tiny, loaded, monkeypatch):
    """Two DPO steps straight, against one step, a stop, and a resume: the same second step and the same adapter."""
    from transformers import TrainerCallback

    class StopAfterOne(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            control.should_training_stop = state.global_step >= 1

    monkeypatch.setattr(prefer_train, "SAVE_STEPS", 1)
    stages = ("briefs", "judge", "sample", "pairs", "train")
    two = tiny.replace(epochs=2, out_dir=str(Path(tiny.out_dir).parent / "straight"))
    straight = prefer.run(two, stages=stages, progress=False, loaded=loaded)["metrics"]
    stopped = two.replace(out_dir=str(Path(tiny.out_dir).parent / "stopped"))
    monkeypatch.setattr(prefer_train, "CALLBACKS", [StopAfterOne()])
    first = prefer.run(stopped, stages=stages, progress=False, loaded=loaded)["metrics"]
    assert len(first["steps"]) == 1 and len(straight["steps"]) == 2
    out = Path(stopped.out_dir)                  # the process "died" after checkpoint-1: no adapter, no metrics
    shutil.rmtree(out / "epochs")
    (out / "metrics.json").unlink()
    monkeypatch.setattr(prefer_train, "CALLBACKS", [])
    resumed = prefer.run(stopped, stages=stages, progress=False, loaded=loaded)["metrics"]
    assert resumed["resumed_from"] == "checkpoint-1" and len(resumed["steps"]) == 2
    # its time counts the part before the stop (recorded in the checkpoint) and the resumed part
    assert 0 < resumed["seconds_before_resume"] <= first["seconds"]
    assert resumed["seconds"] > resumed["seconds_before_resume"] and first["seconds_before_resume"] == 0
    assert [round(s["loss"], 4) for s in resumed["steps"]] == [round(s["loss"], 4) for s in straight["steps"]]
    a = load_file(Path(two.out_dir) / "epochs" / "epoch-2" / "adapter_model.safetensors")
    b = load_file(out / "epochs" / "epoch-2" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_prefer_rft_reuses_the_drafts(tiny, loaded):
    cfg = tiny.replace(recipe="rft", out_dir=str(Path(tiny.out_dir).parent / "rft"), install_to="")
    lines = Path(cfg.samples).read_text().count("\n")
    r = prefer.run(cfg, stages=prefer.STAGES[:6], progress=False, loaded=loaded)
    assert Path(cfg.samples).read_text().count("\n") == lines      # the shared cache answered every draft
    assert r["metrics"]["recipe"] == "rft" and r["metrics"]["epochs"][0]["steps"] == 1
    assert Path(r["gguf"]).is_file() and "watch" not in r


def test_starting_adapter_in_peft_matches_llama_cpp(tiny, loaded):
    model, tokenizer, base = prefer_train.load_policy(tiny, loaded)
    fmt = render.chat_formatter(base.path)
    samples = [(render.render(prefer_train.as_annotation("x", prefer.load_briefs(tiny)[0][0].brief,
                                                         "The buttons rattled in Mabel's shell like rain."), fmt,
                              "passage").prompt, "The buttons rattled in Mabel's shell like rain on a tin roof.")]
    base_eng = Engine.load("smollm2-135m", n_threads=THREADS)
    try:
        got = crosscheck.compare(model, base_eng, base_eng.variant(tiny.start_adapter), samples)
    finally:
        base_eng.close()
    assert got["pearson_r"] > crosscheck.MIN_R, got
