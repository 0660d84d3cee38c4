"""The app's named API (/draft, /score) through gradio_client, against a launched server on the real model.

    python -m pytest -q tests/test_app_api.py

Drafts are short (16-24 tokens) so the file runs in well under a minute on 2 shared cores.
"""
from __future__ import annotations

import json
import math

import httpx
import pytest
from gradio_client.exceptions import AppError

from assistant.pool import CQA_ADAPTER
from page.plumbing import INTERNAL

# A brief with specific facts, and two texts: one written for it, one that ignores it.
BRIEF = dict(task="Write the opening paragraph of a ghost story",
             intent="the reader should feel that the lighthouse remembers",
             audience="adult readers of literary fiction",
             world="Mara keeps the lighthouse on Skerry Rock; her brother drowned there in 1953.")
OTHER_BRIEF = dict(task="Write a recipe for lemon cake", audience="home bakers")
ON_TOPIC = ("Mara climbed the lighthouse stairs at dusk, counting the steps her brother had counted, "
            "and the lamp room was already warm.")
OFF_TOPIC = ("Preheat the oven to 180 degrees, whisk the eggs with the sugar, and fold in the flour "
             "until the batter is smooth and glossy.")
RESTATING = "Mara keeps the lighthouse on Skerry Rock; her brother drowned there in 1953. The lighthouse remembers."
SHORT = dict(max_tokens=24, seed=1)
TOKEN_KEYS = {"token", "s0", "sY", "i", "copied", "class"}
CLASSES = {"surprise", "noise", "cliche", "plain"}

# Tolerance between a fresh draft's live score and an independent /score of the same text, bits/token.
# A draft's two log-probs per token come from its twin stream, which decodes one token per sequence per
# step; /score decodes the whole text in one batch, where llama.cpp takes other matmul kernels (activations
# quantised against Q4_1 weights). Measured on 6 drafts x 32 tokens: per-token differences of mean
# 0.02-0.07, max 0.31 bits. A misaligned or wrong pass differs by several bits per token.
SY_MEAN_TOL = 0.15   # bits/token, mean |sY_draft - sY_score|
SY_MAX_TOL = 1.0     # bits, any single token


def check_score(s: dict, text: str | None = None) -> None:
    """The score's invariants: totals are sums of the per-token numbers, classes are counted, text joins."""
    n = s["n_tokens"]
    toks = s["tokens"]
    assert n == len(toks) >= 1
    for t in toks:
        assert set(t) == TOKEN_KEYS and t["class"] in CLASSES and isinstance(t["copied"], bool)
        assert math.isfinite(t["s0"]) and math.isfinite(t["sY"]) and t["s0"] >= 0 and t["sY"] >= 0  # surprisal
        assert t["i"] == pytest.approx(t["s0"] - t["sY"], abs=1e-9)
    assert s["I"] == pytest.approx(sum(t["i"] for t in toks), abs=1e-6)
    assert s["H_X"] == pytest.approx(sum(t["s0"] for t in toks), abs=1e-6)
    assert s["H_X_given_Y"] == pytest.approx(sum(t["sY"] for t in toks), abs=1e-6)
    assert s["I"] == pytest.approx(s["H_X"] - s["H_X_given_Y"], abs=1e-6)
    assert s["I_copied"] + s["I_uncopied"] == pytest.approx(s["I"], abs=1e-6)
    assert s["I_uncopied"] == pytest.approx(sum(t["i"] for t in toks if not t["copied"]), abs=1e-6)
    assert s["n_copied"] == sum(t["copied"] for t in toks)
    assert s["I_per_token"] == pytest.approx(s["I"] / n)
    assert sum(s["classes"].values()) == n
    assert s["classes"] == {c: sum(t["class"] == c for t in toks) for c in CLASSES}
    if text is not None:
        assert s["text"] == text == "".join(t["token"] for t in toks)


@pytest.fixture(scope="module")
def draft(api) -> dict:
    return api.draft(**BRIEF, **SHORT)


def test_draft_returns_a_draft_and_its_score(draft):
    assert set(draft) >= {"draft", "notice", "stop_reason", "score"}
    assert draft["draft"].strip() and draft["notice"] == ""
    assert draft["stop_reason"] in ("length", "eos")
    s = draft["score"]
    assert {"I", "H_X", "H_X_given_Y", "I_uncopied", "n_tokens", "tokens"} <= set(s)
    assert 1 <= s["n_tokens"] <= SHORT["max_tokens"]
    assert s["template"] == "chat"
    check_score(s, draft["draft"])


def test_seeded_drafts_are_reproducible(api, draft):
    again = api.draft(**BRIEF, **SHORT)
    assert again["draft"] == draft["draft"]
    assert [t["token"] for t in again["score"]["tokens"]] == [t["token"] for t in draft["score"]["tokens"]]
    assert again["score"]["I"] == pytest.approx(draft["score"]["I"], abs=1e-6)
    # Other seeds, shorter drafts: compare with seed 1's first 12 tokens (the same sampling sequence).
    first = "".join(t["token"] for t in draft["score"]["tokens"][:12])
    others = {api.draft(**BRIEF, max_tokens=12, seed=s)["draft"] for s in (2, 3)}
    assert others - {first}, f"seeds 1, 2 and 3 all began {first!r}"


def test_draft_score_matches_an_independent_score(api, draft):
    d = draft["score"]
    s = api.score(text=draft["draft"], **BRIEF)
    check_score(s, draft["draft"])
    if [t["token"] for t in s["tokens"]] != [t["token"] for t in d["tokens"]]:
        # Re-tokenising a generated text may split it differently: compare bits per token only.
        assert abs(s["I_per_token"] - d["I_per_token"]) <= 2 * SY_MEAN_TOL
        return
    for key in ("sY", "s0"):   # both readers: the twin stream's one-row kernels vs the batched pass
        diffs = [abs(a[key] - b[key]) for a, b in zip(d["tokens"], s["tokens"])]
        assert sum(diffs) / len(diffs) <= SY_MEAN_TOL and max(diffs) <= SY_MAX_TOL, (key, diffs)
    assert abs(s["I"] - d["I"]) / d["n_tokens"] <= 2 * SY_MEAN_TOL
    assert [t["copied"] for t in s["tokens"]] == [t["copied"] for t in d["tokens"]]


@pytest.fixture(scope="module")
def scored(api) -> dict:
    """/score of the two texts under the two briefs (4 calls, shared by the tests below)."""
    out = {"on": api.score(text=ON_TOPIC, **BRIEF), "off": api.score(text=OFF_TOPIC, **BRIEF),
           "on_other": api.score(text=ON_TOPIC, **OTHER_BRIEF), "off_other": api.score(text=OFF_TOPIC, **OTHER_BRIEF)}
    for key, s in out.items():
        check_score(s, ON_TOPIC if key.startswith("on") else OFF_TOPIC)
    return out


def test_score_ranks_text_by_how_well_the_brief_explains_it(api, scored):
    """Each text scores higher I under its own brief, and under a brief the fitting text outranks the other."""
    on, off, on_other, off_other = (scored[k] for k in ("on", "off", "on_other", "off_other"))
    assert on["I_per_token"] > off["I_per_token"]
    assert off_other["I_per_token"] > on_other["I_per_token"]
    assert on["I_per_token"] > on_other["I_per_token"]
    assert off_other["I_per_token"] > off["I_per_token"]
    # The brief removes surprise: the fitting text is less surprising given its brief than without it.
    assert on["H_X_given_Y"] < on["H_X"]
    # Same text, same brief: the same numbers (the batched pass does not depend on the KV cache's state).
    assert api.score(text=ON_TOPIC, **BRIEF)["I"] == pytest.approx(on["I"], abs=1e-9)


def test_score_separates_spans_copied_from_the_brief(api, scored):
    copy = api.score(text=RESTATING, **BRIEF)
    fresh = scored["on"]
    check_score(copy, RESTATING)
    # Copying is a shared run of 2 words or more: the fresh text shares only "the lighthouse" and "her brother".
    assert "".join(t["token"] for t in fresh["tokens"] if t["copied"]).split() == ["the", "lighthouse", "her", "brother"]
    assert fresh["I_uncopied"] == pytest.approx(fresh["I"] - fresh["I_copied"])
    assert copy["n_copied"] >= 10 and copy["n_copied"] > 2 * fresh["n_copied"] and copy["I_copied"] > 0
    copied = "".join(t["token"] for t in copy["tokens"] if t["copied"])
    assert "Skerry" in copied and "1953" in copied
    # Restating earns I cheaply (docs/design.md §5); without the copied spans much less is left.
    assert copy["I_uncopied_per_token"] < copy["I_per_token"]


def test_plain_template_is_reported(api, scored):
    s = api.score(text=ON_TOPIC, **BRIEF, template="plain")
    check_score(s, ON_TOPIC)
    assert s["template"] == "plain" and scored["on"]["template"] == "chat"
    assert s["I"] != scored["on"]["I"]   # the template changes the numbers: that is why it is reported


def test_stop_strings_are_taken_literally(api):
    """A lone backslash or a non-ASCII stop string is a string to stop at, not an escape to decode."""
    d = api.draft(**BRIEF, max_tokens=8, seed=1, stop="\\|é|\\n\\n")
    assert d["score"] is None or d["score"]["n_tokens"] <= 8
    assert "\n\n" not in d["draft"] and "é" not in d["draft"]


def test_text_so_far_longer_than_the_context_is_shortened_with_a_notice(api):
    sentences = [f"Wave {k} broke on the rock and Mara counted it." for k in range(380)]
    text_so_far = " ".join(sentences)   # ~18,000 characters, over 4,000 tokens: twice the 2,048-token context
    assert len(text_so_far) < 20_000   # under the per-field cap, so it is shortened, not refused
    # The prompt must leave room for max_tokens: 1,024 keeps the prompt (the slow part on 2 cores) near
    # 1,000 tokens; the stop strings end the draft at its first punctuation mark, a few words into the
    # next sentence (the text so far ends with a full stop, so the draft does not begin with one).
    d = api.draft(task="Continue the story", text_so_far=text_so_far, max_tokens=1024, seed=1,
                  stop=".|,|!|?|;")
    assert "longer than the model's context" in d["notice"] and "words of 'text so far' were left out" in d["notice"]
    assert d["draft"].strip() and d["score"] is not None
    check_score(d["score"], d["draft"])


# ---- bad input: a clear message (AppError), never a traceback, and the server keeps serving -------------
LONG = "x" * 30_000
BAD = [
    ("/draft", dict(), r"brief is empty"),
    ("/draft", dict(task="   ", intent="\n"), r"brief is empty"),
    ("/score", dict(text="", **BRIEF), r"no text to score"),
    ("/score", dict(text="  \n ", **BRIEF), r"no text to score"),
    ("/score", dict(text=ON_TOPIC), r"brief is empty"),
    ("/draft", dict(task=LONG), r"too long: task is 30,000 characters"),
    ("/draft", dict(task="t", text_so_far=LONG), r"too long: text_so_far is 30,000 characters"),
    ("/score", dict(text=ON_TOPIC, world=LONG), r"too long: world is 30,000 characters"),
    ("/score", dict(text="x" * 50_000, **BRIEF), r"too long: the text is 50,000 characters"),
    ("/score", dict(text=" ".join(["word"] * 6000), **BRIEF), r"more than the context window of 2048: shorten"),
    ("/draft", dict(task="t", temperature=5, top_p=0, max_tokens=0),
     r"temperature 5 must be between 0 and 2; top_p 0 must be in \(0, 1\]; max_tokens 0 must be between 1"),
    ("/draft", dict(task="t", seed=1.5), r"seed: must be a whole number"),
    ("/draft", dict(task="t", model="gpt-9"), r"unknown variant 'gpt-9': choose one of \['base"),
    ("/score", dict(text=ON_TOPIC, task="t", model="gpt-9"), r"unknown variant 'gpt-9'"),
    ("/draft", dict(task="t", template="jinja"), r"unknown template 'jinja': use 'chat' or 'plain'"),
    ("/draft", dict(task="t", temperature=5, guidance=-1, cqa_strength=9),
     r"temperature 5 must be between 0 and 2; guidance -1 must be between 0 and 3; CQA strength 9 must be "
     r"between 0 and 2"),
    ("/draft", dict(task="t", n=9), r"drafts: 9 must be a whole number from 1 to 8"),
    ("/compare", dict(task="t", guidance=3.5, cqa_strength=-0.1),
     r"guidance 3.5 must be between 0 and 3; CQA strength -0.1 must be between 0 and 2"),
    ("/compare", dict(task="t", tuned="base"), r"unknown tuned model 'base': choose one of \['CQA', 'CQA-passage'\]"),
]


def assert_still_serving(api):
    s = api.score(text="The lamp was lit.", task="Write one line about a lighthouse")
    assert s["n_tokens"] >= 1


@pytest.mark.parametrize("endpoint,kwargs,message", BAD, ids=[f"{e[1:]}{k}" for k, (e, _, _) in enumerate(BAD)])
def test_bad_input_gets_a_clear_error(api, server, endpoint, kwargs, message):
    with pytest.raises(AppError, match=message) as e:
        api.call(endpoint, **kwargs)
    text = str(e.value)
    assert "Traceback" not in text and 'File "' not in text and INTERNAL not in text
    assert server.alive()


def test_cqa_draft_keeps_notes_apart_and_scores_only_a_passage(api):
    """The shipped adapter through the API, on any trajectory: the notes (if the model reasons first) are
    never in the draft, a passage is scored under the brief like pasted text, and notes that ran out of
    tokens leave no score and say so. (The writer's branches are tested by construction in test_writer.)"""
    assert CQA_ADAPTER.is_file()
    d = api.draft(**BRIEF, model="CQA", max_tokens=48, seed=2, guidance=0.5, cqa_strength=1.5)
    assert d["model"] == "CQA" and d["guidance"] == 0.5 and d["cqa_strength"] == 1.5
    assert not d["draft"].lstrip().startswith("Notes:") or d["score"] is None
    if d["score"] is None:   # no passage yet: the notes stay in the draft (Continue goes on from them)
        assert d["draft"].startswith("Notes:") and d["notes"] == "" and "before the passage" in d["notice"]
        return
    check_score(d["score"])
    assert d["score"]["guidance"] == 0.5 and d["score"]["cqa_strength"] == 1.5
    again = api.score(text=d["draft"], model="CQA", **BRIEF)
    if [t["token"] for t in again["tokens"]] == [t["token"] for t in d["score"]["tokens"]]:
        assert abs(again["I_per_token"] - d["score"]["I_per_token"]) <= 2 * SY_MEAN_TOL


def test_passage_only_model_writes_its_passage_at_once(api):
    """The passage-only adapter (models/cqa-passage) as a third model: no notes even when asked to reason first,
    every draft scored from its first token, ranked like any other, and compared with the base."""
    d = api.draft(**BRIEF, model="CQA-passage", max_tokens=32, seed=3, notes=True, n=2, cqa_strength=0.75)
    assert d["model"] == "CQA-passage" and d["cqa_strength"] == 0.75 and len(d["ranked"]) == 2
    for r in d["ranked"]:
        assert r["notes"] == "" and not r["draft"].lstrip().startswith(("Notes:", "Passage:"))
        check_score(r["score"], r["draft"])
    again = api.score(text=d["draft"], model="CQA-passage", **BRIEF)
    if [t["token"] for t in again["tokens"]] == [t["token"] for t in d["score"]["tokens"]]:
        assert abs(again["I_per_token"] - d["score"]["I_per_token"]) <= 2 * SY_MEAN_TOL
    base = api.score(text=d["draft"], model="base", **BRIEF)
    assert base["I"] != again["I"]                  # the adapter is applied when it scores
    c = api.call("/compare", **BRIEF, max_tokens=24, seed=4, tuned="CQA-passage")
    assert set(c) == {"base", "CQA-passage", "difference"} and c["CQA-passage"]["notes"] == ""
    check_score(c["CQA-passage"]["score"])
    assert c["difference"] == pytest.approx(c["CQA-passage"]["score"]["I_per_token"] - c["base"]["score"]["I_per_token"])


def _raw_call(server, endpoint: str, body: bytes) -> tuple[int, str]:
    """POST a raw body to Gradio's REST API and read the event stream: (status, text). gradio_client
    cannot send these bodies: it refuses to encode lone surrogates itself."""
    base = server.url + "gradio_api/call/" + endpoint
    with httpx.Client(timeout=60) as c:
        r = c.post(base, content=body, headers={"content-type": "application/json"})
        if r.status_code != 200:
            return r.status_code, r.text
        return 200, c.get(f"{base}/{r.json()['event_id']}").text


def _sse_error(stream: str) -> str:
    lines = stream.splitlines()
    k = lines.index("event: error")
    return json.loads(lines[k + 1].removeprefix("data: "))["error"]


def test_lone_surrogates_get_a_clear_error(server, api):
    body = b'{"data": ["Write \\ud800 a line", "", "", "", "", "base", "chat", 0.8, 0.95, 40, 0.05, 1.1, 0, 8, "", 0, 1, 1, true]}'
    status, stream = _raw_call(server, "draft", body)
    assert status == 200 and "event: error" in stream
    assert _sse_error(stream) == ("task has an invalid character (a lone surrogate) at position 6: "
                                  "paste the text again as plain UTF-8")
    body = b'{"data": ["a \\udc80 b", "Write a line", "", "", "", "", "base", "chat"]}'
    status, stream = _raw_call(server, "score", body)
    assert "text has an invalid character (a lone surrogate) at position 2" in _sse_error(stream)
    assert_still_serving(api)


def test_non_finite_numbers_get_a_clear_error(server, api):
    body = b'{"data": ["Write a line", "", "", "", "", "base", "chat", NaN, 0.95, 40, 0.05, 1.1, Infinity, 8, "", 0, 1, 1, true]}'
    status, stream = _raw_call(server, "draft", body)
    assert status == 200
    assert _sse_error(stream) == "temperature: must be a number, got nan; seed: must be a number, got inf"
    body = (b'{"data": ["Write a line", "", "", "", "", "CQA", "chat", 0.8, 0.95, 40, 0.05, 1.1, 0, 8, "", '
            b'NaN, Infinity, 1, true]}')
    status, stream = _raw_call(server, "draft", body)
    assert _sse_error(stream) == "guidance: must be a number, got nan; CQA strength: must be a number, got inf"
    assert_still_serving(api)


def test_compare_returns_both_drafts_scored_and_the_difference(api):
    """Base and CQA through one model, same brief, seed and guidance; each as /draft returns it."""
    c = api.call("/compare", **BRIEF, max_tokens=24, seed=4, guidance=0.25)
    base, cqa = c["base"], c["CQA"]
    assert base["model"] == "base" and cqa["model"] == "CQA" and base["guidance"] == cqa["guidance"] == 0.25
    check_score(base["score"], base["draft"])
    alone = api.draft(**BRIEF, max_tokens=24, seed=4, guidance=0.25)
    assert alone["draft"] == base["draft"]          # the same draft as /draft gives, on the same machine
    if cqa["score"] is None:
        assert c["difference"] is None and cqa["draft"].startswith("Notes:") and "before the passage" in cqa["notice"]
    else:
        check_score(cqa["score"])
        assert c["difference"] == pytest.approx(cqa["score"]["I_per_token"] - base["score"]["I_per_token"])


def test_invalid_utf8_is_refused_without_a_server_error(server, api):
    status, text = _raw_call(server, "score", b'{"data": ["a \xc3\x28 b", "Write a line"]}')
    assert 400 <= status < 500, (status, text)
    assert "Traceback" not in text
    assert_still_serving(api)


def test_server_keeps_serving_after_bad_input(api, server):
    assert_still_serving(api)
    assert server.alive()


def test_best_of_n_returns_a_ranked_list(api):
    d = api.draft(**BRIEF, max_tokens=12, seed=5, n=3)
    ranked = d["ranked"]
    assert len(ranked) == 3 and sorted(r["seed"] for r in ranked) == [5, 6, 7]
    assert d["draft"] == ranked[0]["draft"] and d["seed"] == ranked[0]["seed"]
    for r in ranked:
        check_score(r["score"], r["draft"])
        assert r["score"]["brief_overlap"] is None or 0 <= r["score"]["brief_overlap"] <= 1
    clean = [r for r in ranked if (r["score"]["brief_overlap"] or 0) <= 0.15]
    assert [r["rank_score"] for r in clean] == sorted((r["rank_score"] for r in clean), reverse=True)
    # written side by side: the same seed and N give the same drafts every time (a draft of seed 6 written alone
    # runs other kernels than a batch of three rows, so it may differ)
    again = api.draft(**BRIEF, max_tokens=12, seed=5, n=3)["ranked"]
    assert [(r["seed"], r["draft"]) for r in again] == [(r["seed"], r["draft"]) for r in ranked]
    assert len(api.draft(**BRIEF, max_tokens=12, seed=6)["ranked"]) == 1
