import doctest

import pytest

from assistant import brief as brief_mod
from assistant.brief import Brief, BriefError, fit, render, user_message
from assistant.sampler import Sampler, SamplerError


def test_brief_docstring():
    assert doctest.testmod(brief_mod).failed == 0


def test_render_differs_only_in_constraints():
    b = Brief(task="Write an opening.", intent="dread", audience="teens", world="no electricity", text_so_far="It rained.")
    p = render(b)
    cond, uncond = p.conditional.text, p.unconditional.text
    assert "dread" in cond and "no electricity" in cond and "It rained." in cond
    assert "dread" not in uncond and uncond.endswith("Passage:\n")
    assert cond.endswith("Passage:\n")
    assert render(Brief()).conditional == p.unconditional  # an empty brief is the unconditional prompt
    # the brief's words are one plain-text part; only the template's own text is markup
    assert ("Task: Write an opening.\nIntent: dread\nAudience: teens\nWorld: no electricity\nText so far:\n"
            "It rained.", False) in p.conditional.parts


def test_from_dict_rejects_unknown_and_non_text():
    with pytest.raises(BriefError, match="unknown brief field"):
        Brief.from_dict({"taks": "x"})
    with pytest.raises(BriefError, match="intent: must be text"):
        Brief.from_dict({"intent": 3})
    assert Brief.from_dict({"task": "x"}).audience == ""


def test_fit_drops_oldest_words_with_notice():
    b = Brief(task="t", text_so_far=" ".join(f"w{i}" for i in range(100)))
    count = lambda x: len(user_message(x).split())  # noqa: E731 - one "token" per word
    kept, notice = fit(b, 30, count)
    assert count(kept) <= 30 and kept.text_so_far.endswith("w99") and not kept.text_so_far.startswith("w0 ")
    assert "oldest" in notice
    assert fit(b, 1000, count) == (b, "")
    with pytest.raises(BriefError, match="brief alone"):
        fit(Brief(task="a " * 50, text_so_far="x y"), 10, count)


def test_sampler_collects_every_problem():
    with pytest.raises(SamplerError) as e:
        Sampler(temperature=5, top_p=0, max_tokens=0)
    msg = str(e.value)
    assert "temperature 5" in msg and "top_p 0" in msg and "max_tokens 0" in msg


def test_sampler_types():
    with pytest.raises(SamplerError, match="seed: must be a whole number"):
        Sampler(seed=1.5)
    with pytest.raises(SamplerError, match="must be a number"):
        Sampler(temperature="hot")
    with pytest.raises(SamplerError, match="unknown sampler setting"):
        Sampler.from_dict({"temp": 1})
    assert Sampler(stop="\n\n").stop == ("\n\n",)


def test_split_notes_of_a_tuned_draft():
    from assistant.brief import split_notes
    assert split_notes("Notes:\n- [audience/lexis] «x» over «y»: z\n\nPassage:\nThe gulls.") == \
        ("Notes:\n- [audience/lexis] «x» over «y»: z", "The gulls.")
    assert split_notes("Notes:\n- [craft/ethos] «a» over «b»") == ("Notes:\n- [craft/ethos] «a» over «b»", "")
    assert split_notes("Passage:\nplain draft") == ("", "Passage:\nplain draft")
