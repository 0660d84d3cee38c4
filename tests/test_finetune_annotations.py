"""Annotation schema, validation messages, and the docstring examples of finetune/.

    python -m pytest tests/test_finetune_annotations.py -q
"""
import doctest
import importlib
import json
from pathlib import Path

import pytest

from finetune import annotations
from finetune.__main__ import main

DATA = Path(__file__).parent / "data"
VALID, MALFORMED, EMPTY = DATA / "finetune_valid.jsonl", DATA / "finetune_malformed.jsonl", DATA / "finetune_empty.jsonl"


def test_valid_file_loads():
    anns = annotations.load(VALID)
    assert [a.id for a in anns] == ["t-001", "t-002", "t-003", "t-004"]
    assert [a.split for a in anns] == ["train", "train", "train", "heldout"]
    assert anns[0].brief.task.startswith("Write the opening paragraph")
    assert anns[2].brief.text_so_far == "Little Owl could not sleep. The wood was very dark."
    assert len(anns[0].reasoning) == 5 and anns[0].reasoning[1].source == "audience"


def test_malformed_file_reports_every_problem_with_file_line_field():
    anns, problems = annotations.read(MALFORMED)
    f = str(MALFORMED)
    assert problems == [
        f"{f}:1: json: Expecting ':' delimiter at column 2277: each line must be one JSON object",
        f"{f}:2: passage: missing",
        f"{f}:3: split: 'test' is not one of train|heldout",
        f"{f}:3: reasoning: 1 steps; write 5-10",
        f"{f}:3: reasoning[0].source: 'vibes' is not one of intent|audience|reality|craft",
        f"{f}:3: reasoning[0].choice: 'not in the passage at all' does not occur in the passage "
        "(it must be an exact, case-sensitive quote)",
        f"{f}:4: brief.mood: unknown field (known: task, intent, audience, world, text_so_far)",
        f"{f}:4: brief.task: must not be empty",
        f"{f}:5: id: 't-001' already used on line 4",
    ]
    with pytest.raises(annotations.AnnotationError) as e:
        annotations.load(MALFORMED)
    assert e.value.problems == problems and "and 8 more" in str(e.value)


@pytest.mark.parametrize("record, expected", [
    ({"reasoning": "x"}, "reasoning: must be a list of steps"),
    ({"brief": "x"}, "brief: must be an object"),
    ({"passage": 3}, "passage: must be a string, got int"),
    ({"passage": "too short"}, "passage: 2 words; write 80-300"),
    ({"id": "a<|im_end|>"}, "id: contains the chat-template marker '<|im_end|>'"),
    ({"colour": "red"}, "colour: unknown field"),
])
def test_single_field_problems(record, expected):
    obj = json.loads(VALID.read_text().splitlines()[0])
    obj.update(record)
    problems = annotations.check_record(obj, "f.jsonl:7")
    assert any(p.startswith(f"f.jsonl:7: {expected}") for p in problems), problems


def test_choice_word_limits_and_alternative():
    obj = json.loads(VALID.read_text().splitlines()[0])
    obj["reasoning"][0]["choice"] = "Monday"
    obj["reasoning"][1]["alternative"] = obj["reasoning"][1]["choice"]
    problems = annotations.check_record(obj, "f:1")
    assert "f:1: reasoning[0].choice: 1 words; quote 2-12 words of the passage" in problems
    assert "f:1: reasoning[1].alternative: is the same as the choice" in problems


def test_empty_and_missing_files():
    assert annotations.read(EMPTY)[1] == [f"{EMPTY}:0: file: holds no annotations (the file is empty)"]
    missing = DATA / "no-such.jsonl"
    assert "does not exist" in annotations.read(missing)[1][0]


def test_cli_validate(capsys):
    assert main(["validate", str(VALID)]) == 0
    assert "4 annotations, all valid" in capsys.readouterr().out
    assert main(["validate", str(MALFORMED)]) == 1
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 9 and "9 problem(s)" in out.err
    assert main(["validate", str(EMPTY)]) == 1


@pytest.mark.parametrize("module", ["finetune.annotations", "finetune.config", "finetune.render",
                                    "finetune.lora_gguf", "finetune.peft_lora", "finetune.audit", "finetune.files",
                                    "finetune.errors", "finetune.__main__"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
