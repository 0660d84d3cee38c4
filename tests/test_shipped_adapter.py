"""The CQA adapter we ship (models/cqa/): the file its manifest names, made for the embedded base, chosen
from the committed report by the README's rule, and it behaves like a CQA-tuned model.

    python -m pytest -q tests/test_shipped_adapter.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant import catalog, pool
from assistant.adapter_meta import read_adapter_base
from assistant.brief import NOTES_HEADER, PASSAGE_HEADER, Brief
from assistant.engine import Engine
from assistant.errors import BadAdapter
from assistant.pool import CQA_ADAPTER, CQA_LABEL, DEFAULT_MAX_TOKENS, Pool, PoolConfig
from assistant.sampler import Sampler
from assistant.scoring import prompts_for
from eval.choose import choose

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "cqa"
MAX_BYTES = 20 * 1024 * 1024    # the limit for a committed adapter
THREADS = int(os.environ.get("CQA_THREADS") or os.environ.get("CQA_TEST_THREADS", "2"))
BRIEF = Brief(task="Write the opening paragraph of a short story",
              intent="the reader should sense the grief before it is named",
              audience="adult readers of literary fiction",
              world="Ines repairs clocks in Lisbon; her father, who taught her, died in March.")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((SHIPPED / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads((SHIPPED / "eval" / "report.json").read_text(encoding="utf-8"))


def test_the_app_loads_the_shipped_file():
    assert CQA_ADAPTER == SHIPPED / "adapter.gguf" and CQA_ADAPTER.is_file()
    assert CQA_ADAPTER.stat().st_size <= MAX_BYTES


def test_manifest_names_the_file_and_the_embedded_base(manifest):
    assert manifest["adapter"]["file"] == "adapter.gguf"
    assert manifest["adapter"]["sha256"] == catalog.file_sha256(CQA_ADAPTER)
    base = catalog.resolve(None)
    assert manifest["base"]["sha256"] == catalog.file_sha256(base.path)
    assert read_adapter_base(CQA_ADAPTER)["sha256"] == manifest["base"]["sha256"]
    # the corpus it was trained on is the committed one
    assert manifest["data"]["sha256"] == catalog.file_sha256(ROOT / manifest["data"]["path"])


def test_report_covers_every_epoch_and_the_rule_picks_the_shipped_one(manifest, report):
    epochs = [e["epoch"] for e in manifest["epochs"] if e["epoch"] > 0]
    assert epochs == list(range(1, manifest["config"]["epochs"] + 1))
    assert report["variants"] == ["base"] + [f"epoch-{e}" for e in epochs]
    assert choose(report).epoch == manifest["adapter"]["epoch"]
    for group in ("literary", "factual"):
        g = report["groups"][group]
        assert set(g["delta_delta"]) == {f"epoch-{e}" for e in epochs}
        assert all(d["wilcoxon_p"] is not None and 0 <= d["wilcoxon_p"] <= 1 for d in g["delta_delta"].values())


@pytest.fixture(scope="module")
def base():
    eng = Engine.load(None, n_threads=THREADS)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def tuned(base):
    return base.variant(CQA_ADAPTER)


def test_tuned_model_reasons_first(base, tuned):
    """What the corpus teaches, measured without sampling: after the app's prompt the tuned model expects its
    notes ('Notes:' then a '- [source/dimension]' line), the base does not. (A sampled trajectory would differ
    by CPU and thread count; these probabilities hold on any.)"""
    prompt = prompts_for(tuned, BRIEF).conditional   # the chat template, as the app and training use it
    opening = f"{NOTES_HEADER}\n- ["
    p_tuned = float(np.exp(tuned.token_logprobs(prompt, opening).logprobs.sum()))
    p_base = float(np.exp(base.token_logprobs(prompt, opening).logprobs.sum()))
    assert p_tuned > 0.3 and p_base < 1e-3, (p_tuned, p_base)
    # and after its notes, the passage header
    after = tuned.token_logprobs(prompt, f"{opening}craft/lexis] «a» over «b»: why.\n\n{PASSAGE_HEADER}\n")
    assert float(np.exp(after.logprobs[-3:].sum())) > 0.3


def test_eval_generate_reads_the_tuned_models_passage_alone(tuned, monkeypatch):
    """eval generate's writer: the notes get their own budget, the passage is cut to the draft budget. The
    tokens are forced (the real model reads them), so the branch is reached on any machine."""
    from assistant.draft import DraftRun
    from eval.generate import EngineWriter

    eot = tuned.tokenize_prompt("<|im_end|>")[0]
    notes = f"{NOTES_HEADER}\n" + "- [craft/lexis] «the clock» over «the watch»: the shop is full of clocks.\n" * 8
    passage = "The clocks had stopped at nine. " * 12
    script = iter(tuned.tokenize_text(notes + f"\n{PASSAGE_HEADER}\n" + passage) + [eot])
    monkeypatch.setattr(DraftRun, "_choose", lambda self: next(script, eot))
    d = EngineWriter(tuned, "chat").draft(BRIEF, Sampler(max_tokens=40), notes_tokens=DEFAULT_MAX_TOKENS[CQA_LABEL] - 40)
    assert d["notes"] == notes.strip() and d["notes_tokens"] > 100
    assert d["n_tokens"] == 40 == len(tuned.tokenize_text(d["text"])) and d["stop_reason"] == "length"
    assert passage.startswith(d["text"]) and NOTES_HEADER not in d["text"] and len(d["text"].split()) >= 20


def test_an_adapter_for_another_base_is_refused(tmp_path):
    other = tmp_path / "other-base.gguf"     # the same weights with one byte more: another file, another sha256
    other.write_bytes(catalog.resolve(None).path.read_bytes() + b"\0")
    with pytest.raises(BadAdapter, match=r"trained for base smollm2-135m .* load the matching base"):
        Engine.load(str(other), lora_path=CQA_ADAPTER, n_threads=1)


def test_pool_offers_cqa_only_with_an_adapter(tmp_path, monkeypatch):
    monkeypatch.delenv("CQA_ADAPTER", raising=False)
    monkeypatch.delenv("CQA_PASSAGE_ADAPTER", raising=False)
    assert Pool().variants() == ["base", "CQA", "CQA-passage"]       # the shipped ones
    with pytest.raises(BadAdapter, match="CQA adapter .*missing.gguf does not exist"):
        Pool(PoolConfig(adapter=tmp_path / "missing.gguf")).variants()  # asked for, absent: an error
    with pytest.raises(BadAdapter, match="passage-only adapter .*gone.gguf does not exist"):
        Pool(PoolConfig(passage_adapter=tmp_path / "gone.gguf")).variants()
    assert Pool(PoolConfig(cqa=False)).variants() == ["base"]
    monkeypatch.setattr(pool, "CQA_ADAPTER", tmp_path / "none" / "adapter.gguf")
    assert Pool().variants() == ["base", "CQA-passage"]
    monkeypatch.setattr(pool, "PASSAGE_ADAPTER", tmp_path / "none" / "passage.gguf")
    bare = Pool()
    assert bare.variants() == ["base"]
    with pytest.raises(BadAdapter, match=r"no CQA adapter found at .*adapter.gguf: build one .*python -m finetune train"):
        bare.get("CQA")
    with pytest.raises(BadAdapter, match=r"no passage-only adapter found .*python -m finetune train"):
        bare.get("CQA-passage")


def test_app_refuses_to_start_with_a_missing_adapter(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CQA_", "GRADIO_SERVER"))}
    r = subprocess.run([sys.executable, "app.py", "--adapter", str(tmp_path / "missing.gguf"), "--port", "7999"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == f"error: CQA adapter {tmp_path / 'missing.gguf'} does not exist"
