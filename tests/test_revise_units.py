"""The revision tools' pure parts: the alternatives panel, weak spots, the versions store, the rewrite prompt.

    python -m pytest -q tests/test_revise_units.py
"""
from __future__ import annotations

import doctest
import math
import re

import numpy as np
import pytest

from assistant import alternatives, brief, history, revise, weakspots
from assistant.errors import BadInput, BadText, UserError
from page import revise as page_revise


@pytest.mark.parametrize("mod", [alternatives, weakspots, history, revise, brief, page_revise])
def test_doctests(mod):
    assert doctest.testmod(mod).failed == 0


def _worked_rows():
    top = alternatives.Rows(ids=np.array([[7, 8, 9]]), lp=np.log([[0.5, 0.25, 1 / 32]]),
                            lp0=np.log([[0.5, 1 / 16, 1 / 64]]))
    return alternatives.panel(top, 0, [" top", " lamp", " attic"], before="She climbed to the",
                              brief_text="the lamp room smelled", written=7)


def test_alternatives_worked_example():
    rows = _worked_rows()
    assert [(r.token, r.text, r.p, r.p0, r.sY, r.s0, r.i, r.cls, r.copies, r.written) for r in rows] == [
        (7, " top", 0.5, 0.5, 1.0, 1.0, 0.0, "cliche", False, True),
        (8, " lamp", 0.25, 0.0625, 2.0, 4.0, 2.0, "surprise", True, False),
        (9, " attic", 0.03125, 0.015625, 5.0, 6.0, 1.0, "noise", False, False)]
    assert [r.words for r in rows] == ["cliché", "calibrated surprise", "noise"]
    assert [r.token for r in alternatives.sort(rows, "i")] == [8, 9, 7]
    assert [r.token for r in alternatives.sort(rows[::-1], "p")] == [7, 8, 9]
    j = rows[1].to_json()
    assert j["class"] == "surprise" and j["class_words"] == "calibrated surprise" and j["copies"] is True


def test_alternatives_i_is_log2_ratio_on_random_rows():
    rng = np.random.default_rng(0)
    lp = np.sort(np.log(rng.dirichlet(np.ones(50), size=4)), axis=1)[:, ::-1][:, :10]
    lp0 = np.log(rng.dirichlet(np.ones(50), size=4))[:, :10]
    top = alternatives.Rows(np.arange(40).reshape(4, 10), lp, lp0)
    rows = alternatives.panel(top, 2, [f" w{k}" for k in range(10)], "", "", written=-1)
    for r, a, b in zip(rows, lp[2], lp0[2]):
        assert r.i == pytest.approx((a - b) / math.log(2), abs=1e-9)
        assert r.p == pytest.approx(math.exp(a)) and r.p0 == pytest.approx(math.exp(b))


def test_written_token_outside_the_top_k_is_added_last():
    top = alternatives.Rows(np.array([[1, 2]]), np.log([[0.6, 0.3]]), np.log([[0.5, 0.1]]))
    rows = alternatives.panel(top, 0, [" a", " b"], "x", "", written=5, written_row=(" z", math.log(0.01), math.log(0.02)))
    assert [r.token for r in rows] == [1, 2, 5] and rows[-1].written and rows[-1].i == pytest.approx(-1.0)
    # the written token among the top k is marked there, not added twice
    rows = alternatives.panel(top, 0, [" a", " b"], "x", "", written=2, written_row=(" b", 0.0, 0.0))
    assert [r.written for r in rows] == [False, True]


def test_bad_position_and_sort_are_one_clear_message():
    with pytest.raises(BadInput, match="outside the text: it has 3 tokens"):
        alternatives.check_position(3, 3)
    with pytest.raises(BadInput, match="outside the text"):
        alternatives.check_position(-1, 3)
    with pytest.raises(BadInput, match="whole number"):
        alternatives.check_position("2", 3)
    assert alternatives.check_position(2.0, 3) == 2
    with pytest.raises(BadInput, match="use 'p'"):
        alternatives.sort([], "q")
    assert issubclass(BadInput, UserError)


def test_weakspots_worked_example_and_decomposition():
    text = "Aa bb cc. Dd ee ff. Gg hh ii. Jj kk ll."
    offsets = [m.span() for m in re.finditer(r"\S+", text)]
    s0 = [6] * 3 + [1] * 3 + [6] * 3 + [3] * 3
    sY = [2] * 3 + [0.5] * 3 + [5.75] * 3 + [4] * 3
    out = weakspots.find(text, offsets, s0, sY)
    assert [(s.I_per_token, s.kind, s.weak) for s in out] == [
        (4.0, "", False), (0.5, "cliche", False), (0.25, "noise", True), (-1.0, "unexplained", True)]
    assert [(s.first_token, s.last_token, s.n_tokens) for s in out] == [(0, 3, 3), (3, 6, 3), (6, 9, 3), (9, 12, 3)]
    assert [s.index for s in weakspots.weak(out)] == [3, 2]
    assert "Unexplained by the brief" in out[3].reason and "-1.00 bits/token" in out[3].reason
    assert out[2].reason.startswith("Noise:") and "3 of 3 tokens are noise" in out[2].reason
    assert out[1].reason.startswith("Cliché:") and out[0].reason == ""
    # the shortfall splits exactly: (s0_text - s0) + (sY - sY_text) = I_text - I
    i_text = float(np.mean(s0) - np.mean(sY))
    for s in out:
        assert (np.mean(s0) - s.s0) + (s.sY - np.mean(sY)) == pytest.approx(i_text - s.I_per_token)


def test_weakspots_copied_and_short_sentences_are_not_judged():
    text = "Aa bb cc. Dd ee. Gg hh ii."
    offsets = [m.span() for m in re.finditer(r"\S+", text)]
    s0, sY = [6, 6, 6, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]
    out = weakspots.find(text, offsets, s0, sY, copied=[False] * 5 + [True, True, True])
    assert [s.n_tokens for s in out] == [3, 2, 0] and not any(s.weak for s in out)
    assert out[2].to_json()["I_per_token"] is None          # no uncopied token: nan becomes null in JSON
    assert weakspots.find("", [], [], []) == []


def test_sentence_spans():
    t = "  One. Two!  Three?\n\nFour… five \"six.\" Seven"
    assert [t[a:b] for a, b in weakspots.sentence_spans(t)] == ["One.", "Two!", "Three?", "Four…", 'five "six."',
                                                               "Seven"]


def test_history_versions_and_errors():
    h = history.History(max_ids=2, max_versions=3)
    a = h.new("a1")
    for v in ("a2", "a3", "a4"):
        h.push(a, v)
    assert h.depth(a) == 3 and h.current(a) == "a4"
    assert h.undo(a) == "a3" and h.undo(a) == "a2"
    with pytest.raises(BadInput, match="nothing to undo"):
        h.undo(a)
    b, c = h.new("b"), h.new("c")    # a is the least recently used: forgotten
    assert h.current(b) == "b" and h.current(c) == "c"
    with pytest.raises(BadInput, match="unknown or has expired"):
        h.current(a)
    with pytest.raises(BadInput, match="unknown or has expired"):
        h.push(None, "x")


def test_span_and_splice():
    text = "It rained. The sea was blue. We left."
    assert revise.check_span(text, 11, 28) == (11, 28)
    with pytest.raises(BadText, match="the sentence is empty"):
        revise.check_span("A.   B.", 2, 5)
    with pytest.raises(BadInput, match="outside the text"):
        revise.check_span(text, 30, 80)
    with pytest.raises(BadInput, match="whole numbers"):
        revise.check_span(text, "a", 3)
    assert revise.splice(text, 11, 28, " The sea kept its colour. ") == "It rained. The sea kept its colour. We left."


def test_model_answers_are_cut_to_the_sentence():
    cut = revise._first_sentences
    assert cut("The gulls fell silent. Then the bell rang.", 1, "It was sunny.") == "The gulls fell silent."
    assert cut("“The gulls fell silent.”", 1, "It was sunny.") == "The gulls fell silent."
    assert cut('"Go home." She waited.', 1, '"Stay."') == '"Go home."'
    assert cut("Passage:\nA. B. C.", 2, "X. Y.") == "A. B."
    assert cut("   ", 1, "X.") == ""


def test_rewrite_prompt_holds_the_context_and_no_brief_field_is_lost():
    b = brief.Brief(task="A sea story", audience="children")
    msg = brief.rewrite_message(b, "Before it.", "  The sentence.  ", "After it.")
    assert msg.startswith("Task: A sea story\nAudience: children\n\n")
    assert "Text before the sentence:\nBefore it." in msg and "Sentence to rewrite:\nThe sentence." in msg
    assert "must lead into it):\nAfter it." in msg and msg.endswith("Write only the new sentence.")
    assert brief.rewrite_message(brief.Brief(), "", "S.", "").startswith("Text before the sentence:\n(none)")


def test_a_position_no_unconditional_reader_read_has_unknown_p0():
    top = alternatives.Rows(np.array([[1, 2]]), np.log([[0.6, 0.3]]), np.array([[np.nan, np.nan]]))
    rows = alternatives.panel(top, 0, [" a", " b"], "", "", written=1)
    assert [(r.p0, r.i, r.cls) for r in rows] == [(None, None, "unknown")] * 2
    assert [r.token for r in alternatives.sort(rows, "i")] == [1, 2]


def test_page_labels_doctest():
    import page.revise
    assert doctest.testmod(page.revise).failed == 0


def test_token_view_carries_positions_and_weak_marks():
    from assistant import card
    r = {"tokens": [{"token": "The", "s0": 3.0, "sY": 1.0, "i": 2.0, "copied": False, "class": "plain"},
                    {"token": " sea", "s0": 6.0, "sY": 1.0, "i": 5.0, "copied": True, "class": "surprise"},
                    {"token": ".", "s0": 1.0, "sY": 1.0, "i": 0.0, "copied": False, "class": "cliche"}]}
    html = card.tokens_html(r, [(1, 3, "cliche")])
    assert [int(x) for x in re.findall(r'data-t="(\d+)"', html)] == [0, 1, 2]
    assert html.count("tok-weak tok-weak-cliche") == 2 and "in a weak sentence (cliché)" in html
    assert "tok-weak" not in card.tokens_html(r)


def test_the_card_says_what_the_score_can_and_cannot_tell():
    from assistant import card
    r = {"I_per_token": 0.5, "I": 5.0, "n_tokens": 10, "H_X_per_token": 3.0, "H_X": 30.0,
         "H_X_given_Y_per_token": 2.5, "H_X_given_Y": 25.0, "n_copied": 0, "I_copied": 0.0,
         "I_uncopied_per_token": 0.5, "classes": {"surprise": 1, "noise": 2, "cliche": 3, "plain": 4},
         "template": "chat", "brief_overlap": 0.0, "n_words": 8}
    md = card.card_markdown(r)
    assert "What the score can and cannot tell" in md and "50 % of pairs" in md and "75 % with CQA" in md
