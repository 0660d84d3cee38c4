"""Copies of the weights made here from the packaged file (assistant/copies.py): cached, recorded, adapters load.

    python -m pytest -q tests/test_copies.py
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from assistant import catalog, copies
from assistant.brief import Brief
from assistant.engine import Engine
from assistant.errors import BadInput, BadModelFile
from assistant.pool import CQA_ADAPTER, Pool, PoolConfig
from assistant.scoring import prompts_for

THREADS = int(os.environ.get("CQA_THREADS", "2"))
TEXT = "The keeper counted the gulls twice, and both times there was one too many."


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cqa-cache")


def test_an_f16_copy_is_made_once_recorded_and_reused(cache):
    src = catalog.resolve()
    path = copies.make(src.path, "F16", cache / "copies", src.sha256)
    rec = copies.record(path)
    assert rec["source_sha256"] == src.sha256 and rec["type"] == "F16" and rec["sha256"] == catalog.file_sha256(path)
    assert rec["seconds"] > 0 and rec["bytes"] == path.stat().st_size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]      # no temp file left behind
    t = time.perf_counter()
    assert copies.make(src.path, "F16", cache / "copies", src.sha256) == path     # cached: not made again
    assert time.perf_counter() - t < 1.0
    from gguf import GGUFReader
    meta = GGUFReader(str(path), "r")
    assert meta.get_field(copies.KEY_COPY_OF).contents() == src.sha256
    assert meta.get_field(copies.KEY_FILE_TYPE).contents() == copies.FILE_TYPES["F16"]
    assert meta.get_field("tokenizer.chat_template").contents() == \
        GGUFReader(str(src.path), "r").get_field("tokenizer.chat_template").contents()


def test_the_copy_serves_the_same_model_and_the_adapters_trained_for_the_source(cache):
    shipped = Engine.load(n_threads=THREADS, cache_dir=cache)
    f16 = Engine.load(n_threads=THREADS, cache_dir=cache, weights="F16")
    try:
        assert f16.model.path.parent == cache / "copies" and f16.model.base_sha256 == shipped.model.sha256
        p = prompts_for(shipped, Brief(task="Write a line about a lighthouse keeper"))
        for a, b in ((shipped, f16), (shipped.variant(CQA_ADAPTER), f16.variant(CQA_ADAPTER))):
            la, lb = a.token_logprobs(p.conditional, TEXT), b.token_logprobs(p.conditional, TEXT)
            assert la.ids == lb.ids
            # the same weights, other kernels: a dequantized copy differs by llama.cpp's activation rounding only
            assert np.mean(np.abs(la.logprobs - lb.logprobs)) < 0.2
    finally:
        f16.close()
        shipped.close()


def test_bad_weights_settings_and_a_broken_source_are_clear_errors(cache, tmp_path):
    with pytest.raises(BadInput, match="weights: 'Q2_K' is not one of shipped, F32, F16, BF16, Q8_0"):
        copies.served(catalog.resolve(), "Q2_K", cache)
    with pytest.raises(BadInput, match="weights"):
        PoolConfig(weights="F8")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(BadModelFile, match="could not make the F16 copy"):
        copies.make(broken, "F16", tmp_path / "copies")
    assert not list((tmp_path / "copies").glob("*.gguf"))


def test_the_app_serves_the_measured_default_for_the_embedded_model_only(cache, tmp_path):
    from assistant import defaults, llama
    assert Pool(PoolConfig(cache_dir=cache)).weights() == defaults.weights_for(llama.system_info())
    assert defaults.weights_for("CPU : AVX2 = 1 | OPENMP = 1") == copies.SHIPPED   # not measured there
    assert Pool(PoolConfig(model=str(catalog.resolve().path), cache_dir=cache)).weights() == copies.SHIPPED
    assert Pool(PoolConfig(weights="F16", cache_dir=cache)).weights() == "F16"
    assert defaults.served_weights() == defaults.served_weights(catalog.DEFAULT_MODEL) == Pool(
        PoolConfig(cache_dir=cache)).weights()                    # one answer for the app, the grid and prefer
    assert defaults.served_weights(str(catalog.resolve().path)) == copies.SHIPPED


def test_flash_attention_is_part_of_a_serving_spec(cache):
    """"shipped+FA": the same file, llama.cpp's flash attention on; the same model within kernel rounding, the
    adapters load on it, and a misspelt spec is one clear error naming the choices."""
    assert copies.parse("BF16+FA") == ("BF16", True) and copies.parse("F16") == ("F16", False)
    with pytest.raises(BadInput, match=r"'F16\+fa' is not one of shipped, F32, F16, BF16, Q8_0, each optionally with \+FA"):
        copies.parse("F16+fa")
    with pytest.raises(BadInput, match=r"\+FA"):
        PoolConfig(weights="FA")
    assert PoolConfig(weights="BF16+FA").weights == "BF16+FA"
    plain = Engine.load(n_threads=THREADS, cache_dir=cache)
    flash = Engine.load(n_threads=THREADS, cache_dir=cache, weights="shipped+FA")
    try:
        assert flash.model.path == plain.model.path
        p = prompts_for(plain, Brief(task="Write a line about a lighthouse keeper"))
        for a, b in ((plain, flash), (plain.variant(CQA_ADAPTER), flash.variant(CQA_ADAPTER))):
            la, lb = a.token_logprobs(p.conditional, TEXT), b.token_logprobs(p.conditional, TEXT)
            assert la.ids == lb.ids and np.mean(np.abs(la.logprobs - lb.logprobs)) < 0.2   # as another kernel
    finally:
        flash.close()
        plain.close()
