"""Rendering annotations as training chat examples: same prompt and tokens as the app's engine.

    python -m pytest tests/test_finetune_render.py -q
"""
from pathlib import Path

import pytest

from assistant import brief as briefs
from assistant import catalog
from finetune import annotations, render
from finetune.__main__ import main

VALID = Path(__file__).parent / "data" / "finetune_valid.jsonl"


@pytest.fixture(scope="module")
def base():
    return catalog.resolve("smollm2-135m")


@pytest.fixture(scope="module")
def fmt(base):
    return render.chat_formatter(base.path)


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("llama_cpp")
    from assistant.engine import Engine
    return Engine.load("smollm2-135m", n_threads=2, n_ctx=2048)


@pytest.fixture(scope="module")
def tokenizer(base):
    from finetune.model import load_tokenizer
    return load_tokenizer(base.path)


def test_user_turn_is_the_apps_prompt(fmt, engine):
    ann = annotations.load(VALID)[2]
    r = render.render(ann, fmt)
    app_prompt = engine.chat_formatter(briefs.messages(briefs.user_message(ann.brief)))
    assert r.prompt == app_prompt
    assert "Text so far:\nLittle Owl could not sleep." in r.prompt


def test_assistant_turn_is_notes_then_passage(fmt):
    ann = annotations.load(VALID)[0]
    r = render.render(ann, fmt)
    lines = r.completion.split("\n")
    assert lines[0] == "Notes:" and len(lines) == 1 + 5 + 1 + 1 + 1
    assert lines[2] == ("- [audience/lexis] «the rain drummed like a hundred tiny fingers» over "
                        "«Torrential rain lashed the windows.»: Children know fingers drumming on a table; "
                        "torrential is a word they would stop on.")
    assert lines[6] == "" and lines[7] == "Passage:" and lines[8] == ann.passage
    assert briefs.split_notes(r.completion) == (render.notes(ann.reasoning), ann.passage)   # the app's split


def test_tokens_and_loss_mask_match_the_engine(fmt, tokenizer, engine):
    for ann in annotations.load(VALID):
        r = render.render(ann, fmt)
        end = render.end_of_turn_id(tokenizer, fmt)
        ex = render.tokenize(r, tokenizer, end)
        prompt_ids, text_ids = engine.tokenize_prompt(r.prompt), engine.tokenize_text(r.completion)
        assert ex.input_ids == prompt_ids + text_ids + [end]
        assert ex.labels == [render.IGNORE] * len(prompt_ids) + text_ids + [end]
        assert engine.llama.detokenize([end], special=True) == b"<|im_end|>"


def test_long_examples_error_or_truncate(fmt, tokenizer):
    r = render.render(annotations.load(VALID)[0], fmt)
    with pytest.raises(ValueError, match=r"t-001: \d+ tokens .* raise max_seq_len to at least \d+"):
        render.tokenize(r, tokenizer, 2, max_len=200)
    ex = render.tokenize(r, tokenizer, 2, max_len=200, truncate=True)
    assert len(ex.input_ids) == 200 and ex.truncated and ex.n_target > 0
    with pytest.raises(ValueError):
        render.tokenize(r, tokenizer, 2, max_len=20, truncate=True)   # the prompt alone is longer


def test_cli_preview(capsys):
    assert main(["preview", str(VALID), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("===== t-00") == 2 and "<|im_start|>assistant\n" in out
    assert "----- loss on the assistant turn below -----\nNotes:\n- [craft/mythos]" in out
