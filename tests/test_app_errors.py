"""The page's error root and plumbing, through the real page functions (no server): a UserError reaches the user
as its message; anything else is logged with its traceback and the user reads one short line.

    python -m pytest -q tests/test_app_errors.py
"""
from __future__ import annotations

import doctest
import logging
import re
from pathlib import Path

import gradio as gr
import pytest

import page.plumbing
from assistant.backend import LocalBackend
from assistant.errors import BadText, UserError
from assistant.pool import Pool, PoolConfig
from page.api import Api
from page.compare import CompareTab
from page.plumbing import INTERNAL, Cancels
from page.score import ScoreTab
from page.write import WriteTab, export

BRIEF = ("Write one line about a lighthouse", "", "", "", "")
SAMPLER = (0.8, 0.95, 40, 0.05, 1.1, 0, 8, "")


@pytest.fixture(scope="module")
def real():
    """The real in-process backend; nothing below loads the model (every error comes before it)."""
    return LocalBackend(Pool(PoolConfig(n_threads=1)))


class Broken:
    """A backend that fails as a bug would (the error-path tests only)."""

    def __init__(self, error: Exception):
        self.error = error

    def variants(self):
        return ["base", "CQA"]

    def score(self, *a, **k):
        raise self.error

    scored = score   # the score as an object (the Score tab and /score keep its alternatives)

    def write(self, *a, **k):
        yield from ()
        raise self.error


def test_docstrings():
    assert doctest.testmod(page.plumbing).failed == 0


def test_an_internal_error_is_logged_not_shown(caplog):
    secret = ValueError("s0 has 3 tokens but sY has 4: a shape check deep in the core")
    with caplog.at_level(logging.ERROR, logger="page.plumbing"), pytest.raises(gr.Error) as e:
        ScoreTab(Broken(secret)).score(*BRIEF, "base", "chat", "The lamp was lit.", "")
    assert e.value.message == INTERNAL and "s0 has" not in e.value.message
    [rec] = [r for r in caplog.records if r.name == "page.plumbing"]
    assert rec.levelno == logging.ERROR and rec.exc_info[1] is secret
    assert "Traceback" in caplog.text and "s0 has 3 tokens" in caplog.text


def test_an_internal_error_mid_stream_is_logged_and_stop_forgets_the_draft(caplog):
    cancels = Cancels()
    tab = CompareTab(Broken(KeyError("variant table")), cancels)
    with caplog.at_level(logging.ERROR, logger="page.plumbing"), pytest.raises(gr.Error) as e:
        list(tab.compare(None, *BRIEF, "CQA", "chat", 0.0, 1.0, *SAMPLER))
    assert e.value.message == INTERNAL and "variant table" in caplog.text
    assert cancels._events == {}


def test_a_user_error_is_shown_as_its_message(caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as e:
        Api(Broken(BadText("there is no text to score: paste a passage first"))).score("x", task="t")
    assert e.value.message == "there is no text to score: paste a passage first"
    assert not caplog.records   # a user's mistake is not logged as a failure


def test_the_real_page_turns_user_errors_into_messages(real):
    cases = [
        (lambda: ScoreTab(real).score(*BRIEF, "gpt-9", "chat", "The lamp.", ""), r"unknown variant 'gpt-9'"),
        (lambda: Api(real).draft(task="t", temperature=5, guidance=-1),
         r"^temperature 5 must be between 0 and 2; guidance -1 must be between 0 and 3$"),
        (lambda: Api(real).compare(task="t", tuned="base"),
         r"^unknown tuned model 'base': choose one of \['CQA', 'CQA-passage'\]$"),
        (lambda: Api(real).score("a \udc80 b", task="t"), r"^text has an invalid character \(a lone surrogate\)"),
        (lambda: list(WriteTab(real, Cancels(), "m").generate(None, *BRIEF, "base", "chat", 0.0, 1.0, 9, True, "",
                                                              {}, *SAMPLER)),
         r"^drafts: 9 must be a whole number from 1 to 8$"),
        (lambda: list(WriteTab(real, Cancels(), "m").continue_draft(None, *BRIEF, "base", "chat", 0.0, 1.0, 1,
                                                                    True, " ", {}, *SAMPLER)),
         r"^There is no draft to continue: generate one first\.$"),
        (lambda: export({}, "md"), r"^Nothing to export yet: generate a draft first\.$"),
    ]
    for call, message in cases:
        with pytest.raises(gr.Error) as e:
            call()
        assert re.search(message, e.value.message), (message, e.value.message)


def test_an_annotation_that_cannot_be_saved_is_a_user_error():
    from finetune import workbench
    with pytest.raises(UserError, match="form: passage: missing"):
        workbench.append(None, {"id": ""})


def test_stop_sets_only_its_sessions_draft_and_a_newer_draft_survives_an_older_ones_end():
    cancels = Cancels()
    me, other = gr.Request(session_hash="me"), gr.Request(session_hash="other")
    with cancels.running(me) as mine, cancels.running(other) as theirs:
        cancels.stop(me)
        assert mine.is_set() and not theirs.is_set()
    assert cancels._events == {}
    older = cancels.running(me)
    first = older.__enter__()
    with cancels.running(me) as newer:       # the same session starts again before the first ends
        older.__exit__(None, None, None)
        cancels.stop(me)
        assert newer.is_set() and not first.is_set()
    cancels.stop(None)                        # no draft running: nothing to stop, no error


def test_export_writes_a_whole_file(tmp_path):
    rec = {"brief": {"task": "t"}, "draft": "The lamp was lit.", "ids": [1, 2], "score": None}
    with pytest.raises(gr.Error):
        export(rec, "json")
    rec["score"] = {"I": 1.0}
    path = Path(export(rec, "json"))
    assert path.name == "draft.json" and '"The lamp was lit."' in path.read_text(encoding="utf-8")
    assert '"ids"' not in path.read_text(encoding="utf-8") and [p.name for p in path.parent.iterdir()] == ["draft.json"]
