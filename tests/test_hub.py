"""Sharing on the Hugging Face Hub, offline: generated cards, --dry-run, the offline error, and pulling an
adapter from a local cache laid out as the Hub's. (No test talks to the Hub: this machine is offline.)

    python -m pytest -q tests/test_hub.py
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from assistant import catalog
from assistant.pool import CQA_ADAPTER
from finetune import hub

ROOT = Path(__file__).resolve().parent.parent
REV = "0123456789abcdef0123456789abcdef01234567"


def finetune(*args, env=None):
    return subprocess.run([sys.executable, "-m", "finetune", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_model_card_parses_and_carries_the_metadata_and_the_result(tmp_path):
    files = hub.stage_model(tmp_path / "model")
    assert files == ["README.md", "adapter.gguf", "eval/delta.png", "eval/report.json", "eval/report.md",
                     "manifest.json"]
    card = ModelCard.load(tmp_path / "model" / "README.md")
    d = card.data.to_dict()
    assert d["license"] == "apache-2.0" and d["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {"lora", "gguf", "creative-writing"} <= set(d["tags"]) and d["pipeline_tag"] == "text-generation"
    report = json.loads((ROOT / "models/cqa/eval/report.json").read_text())
    dd = report["groups"]["literary"]["delta_delta"]["epoch-3"]
    assert f"| literary | 40 | {dd['mean']:+.3f} |" in card.text and "| factual |" in card.text
    assert (tmp_path / "model" / "adapter.gguf").read_bytes() == CQA_ADAPTER.read_bytes()


def test_dataset_card_parses_with_splits_and_audit_counts(tmp_path):
    files = hub.stage_data(tmp_path / "data")
    assert files == ["FORMAT.md", "README.md", "cqa.jsonl", "heldout.jsonl", "train.jsonl"]
    card = DatasetCard.load(tmp_path / "data" / "README.md")
    d = card.data.to_dict()
    assert d["license"] == "cc-by-4.0" and d["configs"][0]["data_files"][1] == {"split": "test", "path": "heldout.jsonl"}
    train = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    heldout = (tmp_path / "data" / "heldout.jsonl").read_text().splitlines()
    assert len(train) == 100 and len(heldout) == 12 and "112 writing tasks" in card.text
    assert "By source: intent" in card.text


def test_push_dry_run_lists_the_files_and_offline_push_fails_in_one_line(tmp_path):
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    r = finetune("push", "--repo", "someone/cqa", "--dry-run", "--out", str(tmp_path / "m"), env=env)
    assert r.returncode == 0, r.stderr
    assert "README.md, adapter.gguf, eval/delta.png" in r.stdout and "dry run: nothing uploaded" in r.stdout
    r = finetune("push", "--repo", "someone/cqa", "--out", str(tmp_path / "m"), env=env)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(
        "error: offline (HF_HUB_OFFLINE is set): nothing was uploaded")
    r = finetune("push-data", "--repo", "someone/cqa-data", "--dry-run", "--out", str(tmp_path / "d"), env=env)
    assert r.returncode == 0 and "cqa.jsonl, heldout.jsonl, train.jsonl" in r.stdout


def test_offline_is_the_entry_points_setting_passed_to_upload(tmp_path, capsys):
    from finetune.__main__ import main
    assert main(["push", "--repo", "someone/cqa", "--out", str(tmp_path / "m")], env={"HF_HUB_OFFLINE": "yes"}) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: offline (HF_HUB_OFFLINE is set)")
    with pytest.raises(hub.HubError, match="offline"):
        hub.upload(tmp_path / "m", "someone/cqa", "model", private=False, offline=True)


def test_push_without_a_token_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(hub.HubError, match=r"no Hugging Face token: run `hf auth login` or set HF_TOKEN"):
        hub.upload(tmp_path, "someone/cqa", "model", private=False)


def _hub_cache(root: Path, repo: str, files: dict[str, Path]) -> None:
    """A Hub cache folder (HF_HUB_CACHE) holding `files` of model repo `repo` at revision REV on main."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / REV
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy2(src, snap / name)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REV)


def test_pull_an_adapter_from_the_cache_offline_and_refuse_another_base(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/cqa", {"adapter.gguf": CQA_ADAPTER, "manifest.json": CQA_ADAPTER.parent / "manifest.json"})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    path = catalog.resolve_adapter("someone/cqa")
    assert path.name == "adapter.gguf" and path.read_bytes() == CQA_ADAPTER.read_bytes()
    from assistant.engine import Engine
    from assistant.errors import BadAdapter
    eng = Engine.load(lora_path="someone/cqa", n_threads=1)
    assert eng.lora_path == path
    eng.close()
    other = tmp_path / "other-base.gguf"     # the same weights with one byte more: another base
    other.write_bytes(catalog.resolve(None).path.read_bytes() + b"\0")
    with pytest.raises(BadAdapter, match="trained for base smollm2-135m"):
        Engine.load(str(other), lora_path="someone/cqa", n_threads=1)
    with pytest.raises(catalog.ModelUnavailable, match=r"cannot download someone/missing:adapter.gguf .*Offline"):
        catalog.resolve_adapter("someone/missing")


def test_eval_and_pool_take_a_hub_adapter(tmp_path, monkeypatch):
    from eval.variants import parse_adapters
    from assistant.pool import Pool, PoolConfig
    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/cqa", {"adapter.gguf": CQA_ADAPTER, "manifest.json": CQA_ADAPTER.parent / "manifest.json"})
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    [(name, path)] = parse_adapters(["hub=someone/cqa"])
    assert name == "hub" and path.read_bytes() == CQA_ADAPTER.read_bytes()
    assert Pool(PoolConfig(adapter="someone/cqa")).adapter_path() == path


def test_readme_front_matter_is_a_space_card():
    from huggingface_hub import SpaceCard
    card = SpaceCard.load(ROOT / "README.md")
    d = card.data.to_dict()
    assert d["sdk"] == "gradio" and d["app_file"] == "app.py" and d["suggested_hardware"] == "cpu-basic"
    assert 0 < len(d["short_description"]) <= 60   # the Hub's limit for a Space's short description
    import gradio
    assert d["sdk_version"] == gradio.__version__
