"""The annotation workbench's logic (finetune/workbench.py): the same validator as the CLI, choices marked,
coverage with the audit's warning, atomic append, and suggested steps from the real CQA model (tokens forced,
so the parse is tested on any CPU).

    python -m pytest -q tests/test_workbench.py
"""
from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from finetune import annotations, workbench

DATA = Path(__file__).parent / "data" / "finetune_valid.jsonl"


def _ann(k: int) -> dict:
    return json.loads(DATA.read_text(encoding="utf-8").splitlines()[k])


def test_docstrings():
    assert doctest.testmod(workbench).failed == 0


def test_record_round_trips_a_valid_annotation_and_the_validator_names_fields():
    a = _ann(0)
    rec = workbench.record(a["id"], a["genre"], a["split"], a["brief"], a["passage"], a["reasoning"] + [{}])
    assert rec == {**a, "passage": a["passage"].strip()} and workbench.problems(rec, []) == []
    assert workbench.problems(rec, [a["id"]]) == [f"form: id: {a['id']!r} is already in the file; each id must be unique"]
    bad = workbench.record("x", "", "train", a["brief"], a["passage"], [{**a["reasoning"][0], "source": "vibes"}])
    found = workbench.problems(bad, [])
    assert "form: genre: missing or empty" in " ".join(found) or any(p.startswith("form: genre:") for p in found)
    assert any("reasoning[0].source: 'vibes' is not one of" in p for p in found)
    assert any("reasoning: 1 steps" in p for p in found)


def test_highlight_marks_each_choice_and_lists_missing_ones():
    steps = [{"choice": "the lamp"}, {"choice": "a <b>tag</b>"}, {"choice": "not there"}]
    out = workbench.highlight("She lit the lamp. a <b>tag</b> here.", steps)
    assert out.count("<mark") == 2 and "&lt;b&gt;tag&lt;/b&gt;" in out and "Not in the passage: step 3" in out


def test_coverage_counts_the_file_and_warns_under_15_percent(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(DATA.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    by_source, by_dim, warnings = workbench.coverage(path)
    assert abs(sum(by_source.values()) - 1) < 1e-9 and abs(sum(by_dim.values()) - 1) < 1e-9
    crafty = {"reasoning": [{"source": "craft", "dimension": "lexis"}] * 40}
    _, _, warnings = workbench.coverage(path, crafty)
    assert any("source 'audience'" in w and "under 15%" in w for w in warnings)


def test_append_is_atomic_keeps_earlier_lines_and_refuses_invalid(tmp_path):
    path = tmp_path / "corpus.jsonl"
    first = DATA.read_text(encoding="utf-8").splitlines()[0]
    path.write_text(first, encoding="utf-8")            # no trailing newline: still one line per record
    a = _ann(1)
    assert workbench.append(path, a) == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == first and json.loads(lines[1]) == a
    with pytest.raises(ValueError, match="already in the file"):
        workbench.append(path, a)
    with pytest.raises(ValueError, match="passage: 3 words"):
        workbench.append(path, {**_ann(2), "passage": "Too short here."})
    assert path.read_text(encoding="utf-8").splitlines() == lines
    assert [x.id for x in annotations.load(path)] == [json.loads(first)["id"], a["id"]]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temp file left behind


def test_suggest_steps_parses_the_cqa_models_notes(monkeypatch):
    """The Annotate tab's Suggest steps end to end: the real CQA model (assistant.backend.write_notes, its
    tokens forced) writes the notes, the page parses them into rows (choices the passage holds first)."""
    from assistant.backend import LocalBackend
    from assistant.brief import Brief
    from assistant.draft import DraftRun
    from assistant.pool import Pool, PoolConfig
    from page.annotate import suggest_steps

    backend = LocalBackend(Pool(PoolConfig(n_threads=2)))
    eng = backend.pool.get("CQA")
    a = _ann(0)
    notes = ("craft/mythos] «the box was full of things nobody had lost» over «Open with Mina»: A paradox hooks.\n"
             "- [audience/lexis] «a boiling pan» over «torrential rain»: Children know pans.\n"
             "- [vibes/lexis] «x» over «y»: skipped, not a source.\n\nPassage:\nThe box.")
    eot = eng.tokenize_prompt("<|im_end|>")[0]
    script = iter(eng.tokenize_text(notes) + [eot])
    monkeypatch.setattr(DraftRun, "_choose", lambda self: next(script, eot))
    steps = suggest_steps(backend, Brief(**a["brief"]), a["passage"])
    assert [s["source"] for s in steps] == ["craft", "audience"]
    assert steps[0]["choice"] in a["passage"] and steps[1]["why"] == "Children know pans."
    eng.close()
