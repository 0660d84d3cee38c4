"""`python -m eval pairs --ray auto` on a local Ray cluster (2 CPUs) vs the same evaluation in this process.

    python -m pytest -q tests/test_ray_eval.py
"""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")


def test_eval_pairs_on_ray_actors_equals_the_local_report(tmp_path):
    """`python -m eval pairs --ray auto` spreads the texts over actors (one thread each): the report equals a
    local run with one thread, number for number."""
    from eval.pair_eval import evaluate_pairs
    from eval.pairs import default_pairs_files
    from eval.ray_readers import RayReaders
    from eval.readers import LocalReaders
    from eval.settings import Settings
    files, settings = default_pairs_files(), Settings(progress=False)
    kw = dict(adapters=["cqa=models/cqa/adapter.gguf"], limit=4)
    local, _ = evaluate_pairs(files, tmp_path / "local", settings, LocalReaders(n_threads=1), **kw)
    remote, _ = evaluate_pairs(files, tmp_path / "ray", settings, RayReaders("auto"), **kw)
    assert local["pairs"] == remote["pairs"] and local["groups"] == remote["groups"]
    assert remote["machine"]["n_threads"] == 1
    ray.shutdown()
