"""The passage-only adapter we ship (models/cqa-passage/): trained on the same corpus and config as models/cqa/
but with the passage alone as its target; the file its manifest names, made for the embedded base, its epoch
chosen from the committed pair report by the README's rule, and it writes the passage at once.

    python -m pytest -q tests/test_shipped_passage_adapter.py
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest

from assistant import catalog
from assistant.adapter_meta import read_adapter_base
from assistant.brief import NOTES_HEADER, PASSAGE_HEADER, Brief
from assistant.engine import Engine
from assistant.scoring import prompts_for
from eval.choose import choose

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "cqa-passage"
ADAPTER = SHIPPED / "adapter.gguf"
THREADS = int(os.environ.get("CQA_THREADS") or os.environ.get("CQA_TEST_THREADS", "2"))
BRIEF = Brief(task="Write the opening paragraph of a short story",
              intent="the reader should sense the grief before it is named",
              audience="adult readers of literary fiction",
              world="Ines repairs clocks in Lisbon; her father, who taught her, died in March.")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((SHIPPED / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_names_the_file_the_base_and_the_passage_target(manifest):
    assert manifest["adapter"]["sha256"] == catalog.file_sha256(ADAPTER)
    assert ADAPTER.stat().st_size <= 20 * 1024 * 1024
    base = catalog.resolve(None)
    assert manifest["base"]["sha256"] == catalog.file_sha256(base.path) == read_adapter_base(ADAPTER)["sha256"]
    assert manifest["data"]["sha256"] == catalog.file_sha256(ROOT / manifest["data"]["path"])
    config = tomllib.loads((ROOT / "finetune" / "configs" / "cqa-passage.toml").read_text(encoding="utf-8"))
    assert manifest["config"]["target"] == config["target"] == "passage"
    # the same corpus and schedule as the reasoning adapter: only the target differs
    cqa = json.loads((ROOT / "models" / "cqa" / "manifest.json").read_text(encoding="utf-8"))["config"]
    differ = {k for k in manifest["config"] if manifest["config"][k] != cqa.get(k)}
    assert differ <= {"target", "out_dir"}, differ


def test_the_rule_picks_the_shipped_epoch_from_the_committed_report(manifest):
    report = json.loads((SHIPPED / "eval" / "report.json").read_text(encoding="utf-8"))
    epochs = [e["epoch"] for e in manifest["epochs"] if e["epoch"] > 0]
    assert report["variants"] == ["base"] + [f"epoch-{e}" for e in epochs]
    assert choose(report).epoch == manifest["adapter"]["epoch"]
    shas = {a["name"]: a["sha256"] for a in report["adapters"]}
    assert shas[f"epoch-{manifest['adapter']['epoch']}"] == manifest["adapter"]["sha256"]


def test_it_writes_the_passage_at_once():
    """Measured without sampling: after the app's prompt the passage-only adapter opens with the passage header,
    not with notes (the reasoning adapter opens with notes, tests/test_shipped_adapter.py)."""
    base = Engine.load(None, n_threads=THREADS)
    try:
        tuned = base.variant(ADAPTER)
        prompt = prompts_for(tuned, BRIEF).conditional

        def p(text):
            return float(np.exp(tuned.token_logprobs(prompt, text).logprobs.sum()))
        p_passage, p_notes = p(f"{PASSAGE_HEADER}\n"), p(f"{NOTES_HEADER}\n- [")
        assert p_passage > 0.3 and p_notes < 1e-3, (p_passage, p_notes)
    finally:
        base.close()
