"""The revision endpoints through gradio_client, against the real app: /alternatives, /rewrite, /undo,
/weak_spots, /suggest, /insert, on draft ids from /draft and /score.

    python -m pytest -q tests/test_app_revise_api.py
"""
from __future__ import annotations

import pytest

TASK = "Write the opening paragraph of a ghost story set in a lighthouse"
TEXT = ("Mara climbed the lighthouse stairs at dusk, counting the steps her brother had counted. "
        "It was a nice day and everything was good. The lamp room was already warm.")


def errors(api, api_name: str, **kw) -> str:
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as e:
        api.call(api_name, **kw)
    assert "Traceback" not in str(e.value)
    return str(e.value)


def test_draft_alternatives_rewrite_undo(api):
    d = api.draft(task=TASK, model="base", seed=1, max_tokens=24, n=1)
    key = d["draft_id"]
    assert key and d["ranked"][0]["draft_id"] == key
    t = 3
    a = api.call("/alternatives", draft_id=key, position=t)
    rows = a["alternatives"]
    assert a["position"] == t and len(rows) >= 10 and sum(r["written"] for r in rows) == 1
    written = next(r for r in rows if r["written"])
    tok = d["score"]["tokens"][t]
    assert written["text"] == tok["token"] and written["sY"] == pytest.approx(tok["sY"], abs=1e-4)
    assert written["i"] == pytest.approx(tok["i"], abs=1e-4)
    assert [r["p"] for r in rows[:10]] == sorted((r["p"] for r in rows[:10]), reverse=True)
    by_i = api.call("/alternatives", draft_id=key, position=t, sort="i")["alternatives"]
    assert [r["i"] for r in by_i] == sorted((r["i"] for r in by_i), reverse=True)

    choice = next(r for r in rows if not r["written"])
    new = api.call("/rewrite", draft_id=key, position=t, token=choice["token"])
    assert new["draft_id"] == key and new["versions"] == 2 and new["model"] == "base"
    assert new["score"]["tokens"][t]["token"] == choice["text"], "the chosen alternative is at that position"
    assert [x["token"] for x in new["score"]["tokens"][:t]] == [x["token"] for x in d["score"]["tokens"][:t]]
    assert new["sampler"]["seed"] == 1
    back = api.call("/undo", draft_id=key)
    assert back["versions"] == 1 and back["text"] == d["draft"]
    assert "nothing to undo" in errors(api, "/undo", draft_id=key)


def test_score_weak_spots_suggest_insert(api):
    s = api.score(text=TEXT, task=TASK)
    key = s["draft_id"]
    w = api.call("/weak_spots", draft_id=key)
    assert [x["text"] for x in w["sentences"]] == [
        "Mara climbed the lighthouse stairs at dusk, counting the steps her brother had counted.",
        "It was a nice day and everything was good.", "The lamp room was already warm."]
    assert w["weak"] and all(w["sentences"][k]["kind"] in ("unexplained", "cliche", "noise") for k in w["weak"])
    k = w["weak"][0]
    got = api.call("/suggest", draft_id=key, sentence=k, n=2, timeout=300)
    assert got["sentence"]["index"] == k and 1 <= len(got["suggestions"]) <= 2
    for x in got["suggestions"]:
        assert x["text"] == TEXT.replace(w["sentences"][k]["text"], x["sentence"]) == x["score"]["text"]
        assert x["delta_I_per_token"] == pytest.approx(x["score"]["I_per_token"] - s["I_per_token"], abs=1e-9)
    first = got["suggestions"][0]["sentence"]
    ins = api.call("/insert", draft_id=key, sentence=k, text=first)
    assert ins["versions"] == 2 and first in ins["text"] and ins["score"]["n_tokens"] > 0
    again = api.score(text=ins["text"], task=TASK)                      # the inserted text, scored afresh
    assert ins["score"]["I_per_token"] == pytest.approx(again["I_per_token"], abs=1e-6)
    assert api.call("/undo", draft_id=key)["text"] == TEXT


def test_bad_input_is_one_clear_message(api):
    key = api.score(text=TEXT, task=TASK)["draft_id"]
    assert "unknown or has expired" in errors(api, "/alternatives", draft_id="stale0000000", position=0)
    assert "outside the text: it has" in errors(api, "/alternatives", draft_id=key, position=10_000)
    assert "outside the text" in errors(api, "/rewrite", draft_id=key, position=-1, token=5)
    assert "not a token id of this model" in errors(api, "/rewrite", draft_id=key, position=1, token=10**9)
    assert "sentence 7 is outside the text: it has 3 sentences" in errors(api, "/suggest", draft_id=key, sentence=7)
    assert "the new sentence is empty" in errors(api, "/insert", draft_id=key, sentence=0, text="   ")
    assert "use 'p'" in errors(api, "/alternatives", draft_id=key, position=0, sort="x")
