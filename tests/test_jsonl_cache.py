"""The append-only JSON Lines cache shared by the evals (eval/cache.py) and preference sampling
(finetune/prefer_sample.py): it survives a killed run, and its keys stay the ones the committed caches hold.

    python -m pytest -q tests/test_jsonl_cache.py
"""
import doctest

from assistant import jsonl_cache
from assistant.jsonl_cache import JsonlCache
from eval.cache import ScoreCache
from finetune.prefer_sample import Cache as PreferCache


def test_worked_example():
    assert doctest.testmod(jsonl_cache).failed == 0


def test_a_torn_last_line_is_skipped_and_the_rest_resumes(tmp_path):
    path = tmp_path / "c.jsonl"
    c = JsonlCache(path, version=1)
    c.put(c.key("a"), {"v": 1})
    c.put(c.key("b"), [1, 2])
    with path.open("a") as f:
        f.write('{"key": "torn", "val')          # a run killed mid-write
    again = JsonlCache(path, version=1)
    assert len(again) == 2 and again.get(again.key("a")) == {"v": 1} and again.get(again.key("b")) == [1, 2]
    assert again.get("torn") is None
    assert JsonlCache(path, version=2).get(again.key("a")) == {"v": 1}     # values are found by key ...
    assert JsonlCache(None, version=2).key("a") != again.key("a")          # ... and a new version makes new keys


def test_keys_are_the_ones_the_committed_caches_were_written_with():
    # eval/results/*/cache.jsonl were keyed by sha256(json.dumps([2, *parts])) (dicts in their own order), and the
    # preference samples by sha256(json.dumps([1, *parts], sort_keys=True)): a change here would re-run them all
    assert ScoreCache(None).key("grid-read", "x", {"b": 1, "a": 2}) == \
        "ce35813264d657b63f58a141efb16e88fcf5eb1ebab56ac41b9d7e522c09eea8"
    assert PreferCache(None).key("prefer-judge", {"b": 1, "a": 2}) == \
        "ecb9660cc900cd9ce1af72b287fa1a2161680bf6b60f0ca45ee64a3d8cb667ba"
