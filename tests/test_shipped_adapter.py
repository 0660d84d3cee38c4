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

import pytest

from assistant import catalog, pool, writer
from assistant.adapter_meta import read_adapter_base
from assistant.brief import NOTES_HEADER, PASSAGE_HEADER, Brief, split_notes
from assistant.engine import Draft, Engine, EngineError
from assistant.pool import CQA_ADAPTER, CQA_LABEL, DEFAULT_MAX_TOKENS, Pool, PoolConfig
from assistant.sampler import Sampler
from assistant.scoring import prompts_for
from eval.choose import choose

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "cqa"
MAX_BYTES = 20 * 1024 * 1024    # the limit for a committed adapter
THREADS = int(os.environ.get("CQA_TEST_THREADS", "2"))
# A brief the tuned model answers with notes first (greedy): 8 note lines, then a 196-word passage.
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
def tuned():
    eng = Engine.load(None, lora_path=CQA_ADAPTER, n_threads=THREADS)
    yield eng
    eng.llama.close()


def test_tuned_model_reasons_first_then_writes_the_passage(tuned):
    """What the corpus teaches: notes under 'Notes:', then the passage under 'Passage:', then the end of the
    turn (greedy, so fixed: 760 tokens, ~12 s on 2 cores), within the app's default Max tokens for CQA."""
    prompt = prompts_for(tuned, BRIEF).conditional   # the chat template, as the app and training use it
    draft = tuned.complete(prompt, Sampler(temperature=0.0, max_tokens=DEFAULT_MAX_TOKENS[CQA_LABEL], seed=0))
    assert draft.stop_reason == "eos"
    assert draft.text.lstrip().startswith(NOTES_HEADER), draft.text[:200]
    assert f"\n{PASSAGE_HEADER}\n" in draft.text, draft.text
    notes, passage = split_notes(draft.text)
    assert notes.count("\n- [") >= 3 and len(passage.split()) >= 50, draft.text


def test_eval_generate_reads_the_tuned_models_passage_alone(tuned):
    """eval generate's writer: the notes get their own budget, the passage is cut to the draft budget."""
    from eval.generate import EngineWriter

    d = EngineWriter(tuned, "chat").draft(BRIEF, Sampler(temperature=0.0, max_tokens=40),
                                          notes_tokens=DEFAULT_MAX_TOKENS[CQA_LABEL] - 40)
    assert d["notes"].startswith(NOTES_HEADER) and d["notes_tokens"] > 100
    assert d["n_tokens"] == 40 == len(tuned.tokenize_text(d["text"])) and d["stop_reason"] == "length"
    assert NOTES_HEADER not in d["text"] and PASSAGE_HEADER not in d["text"] and len(d["text"].split()) >= 20


def test_a_draft_that_ends_inside_the_notes_keeps_them_and_can_continue(tuned):
    """Max tokens reached before 'Passage:': the notes stay in the draft with their log-probs (no score yet),
    the notice says what to do, and Continue goes on from exactly there."""
    *_, end = writer.write(tuned, BRIEF, Sampler(temperature=0.0, max_tokens=8))
    assert end.done and end.result is None and end.stop_reason == "length"
    assert end.text.startswith(NOTES_HEADER) and len(end.ids) == len(end.logprobs) == 8
    assert "notes used every token before the passage: Continue" in end.notice
    *_, more = writer.write(tuned, BRIEF, Sampler(temperature=0.0, max_tokens=4), prefix_ids=end.ids,
                            prefix_logprobs=end.logprobs)
    assert more.text.startswith(end.text) and len(more.ids) == 12 and len(more.logprobs) == 12


def test_when_the_model_ends_after_its_notes_the_passage_header_is_added(tuned):
    """Held-out brief br-03, seed 0, the app's sampler: the tuned model ends its turn after 700+ tokens of
    notes (seen in eval generate). The writer adds 'Passage:' and the model writes the passage, scored."""
    brief = Brief(task="Continue the scene in one paragraph",
                  intent="Have the detective notice one clue proving the butler lied about the time.",
                  audience="Adult fans of cosy mysteries",
                  world="Inspector Dela Okafor is investigating a theft at Harrowgate Manor. The hall clock stopped "
                        "at 9:40. The butler, Mr Finch, says he locked up at ten.",
                  text_so_far="Okafor knelt beside the clock and ran a gloved finger along its dusty case. Behind "
                              "her, Mr Finch cleared his throat.")
    sampler = Sampler(temperature=0.8, seed=0, max_tokens=DEFAULT_MAX_TOKENS[CQA_LABEL])
    d = Draft()
    texts = list(writer.stream_draft(tuned, prompts_for(tuned, brief).conditional, sampler, d))
    assert f"\n{PASSAGE_HEADER}\n" in d.text and not d.exact and len(d.ids) <= sampler.max_tokens
    assert texts[-1] == d.text
    *_, end = writer.write(tuned, brief, sampler)
    assert "added the 'Passage:' line" in end.notice and end.notes.startswith(NOTES_HEADER)
    assert end.result is not None and len(end.text.split()) >= 20 and NOTES_HEADER not in end.text


def test_an_adapter_for_another_base_is_refused(tmp_path):
    other = tmp_path / "other-base.gguf"     # the same weights with one byte more: another file, another sha256
    other.write_bytes(catalog.resolve(None).path.read_bytes() + b"\0")
    with pytest.raises(EngineError, match=r"trained for base smollm2-135m .* load the matching base"):
        Engine.load(str(other), lora_path=CQA_ADAPTER, n_threads=1)


def test_pool_offers_cqa_only_with_an_adapter(tmp_path, monkeypatch):
    monkeypatch.delenv("CQA_ADAPTER", raising=False)
    assert Pool().variants() == ["base", "CQA"]                       # the shipped one
    with pytest.raises(ValueError, match="CQA adapter .*missing.gguf does not exist"):
        Pool(PoolConfig(adapter=tmp_path / "missing.gguf")).variants()  # asked for, absent: an error
    monkeypatch.setattr(pool, "CQA_ADAPTER", tmp_path / "none" / "adapter.gguf")
    bare = Pool()
    assert bare.variants() == ["base"]
    with pytest.raises(ValueError, match=r"no CQA adapter found .*python -m finetune train"):
        bare.get("CQA")


def test_app_refuses_to_start_with_a_missing_adapter(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CQA_", "GRADIO_SERVER"))}
    r = subprocess.run([sys.executable, "app.py", "--adapter", str(tmp_path / "missing.gguf"), "--port", "0"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == f"error: CQA adapter {tmp_path / 'missing.gguf'} does not exist"
