"""Drafts of the training briefs from a writer, and the judge's reward of each: cached, resumable, with a bar.

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --stage sample   # ~25 s a brief (8 drafts), 2 cores

Drafts come from the app's own engine and writer code (`assistant.writer.best_of`: N drafts of one brief,
seeds s..s+N-1, the passage at once under "Passage:", live-scored), at the grid's budget and sampler. Each
passage is then scored by the judge as `/score` scores it (`assistant.scoring.score_texts`, /score's numbers with
the brief's two prompts decoded once per brief), and its reward is the ranking score, I over uncopied tokens per token of the budget
(`assistant.ranking.rank_score`). Both steps go to an append-only JSON Lines cache keyed by what made them
(writer or judge adapter sha256, the weights served, template, brief, sampler), so an interrupted run resumes and a second
recipe reuses the first one's drafts.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from assistant import ranking
from assistant.jsonl_cache import JsonlCache

CACHE_VERSION = 1


class Cache(JsonlCache):
    """The drafts-and-rewards cache (assistant/jsonl_cache.py); dict parts of a key are hashed with sorted keys."""

    def __init__(self, path: str | Path | None):
        super().__init__(path, CACHE_VERSION, sort_keys=True)


def write_drafts(engine, brief, sampler, n: int, template: str) -> list[dict]:
    """N drafts of one brief through `assistant.writer.best_of` (the passage at once, no notes), by seed."""
    from assistant import writer

    t0 = time.perf_counter()
    last = None
    for last in writer.best_of(engine, brief, sampler, n, template, notes=False):
        continue
    seconds = time.perf_counter() - t0
    ranked = (last.ranked or [last]) if last is not None else []
    out = [{"seed": u.seed, "text": u.text if u.result is not None else "", "stop_reason": u.stop_reason,
            "n_tokens": u.result.score.n_tokens if u.result is not None else 0,
            "live_I_uncopied": u.result.score.I_uncopied if u.result is not None else None} for u in ranked]
    for d in out:
        d["seconds"] = seconds / max(len(out), 1)     # best_of reports the batch; a draft's share of it
    return sorted(out, key=lambda d: d["seed"])


def judge_texts(engine, brief, texts: list[str], budget: int, template: str) -> list[dict]:
    """The judge's score of each passage as /score gives it (`assistant.scoring.score_texts`: the same numbers,
    the brief's two prompts decoded once for all of them), and its reward (bits per budget token). An empty
    passage has no reward."""
    from assistant import scoring, writer

    out: list[dict] = [{"reward": None} for _ in texts]
    todo = [i for i, t in enumerate(texts) if t.strip()]
    for t in (texts[i] for i in todo):
        writer.check_lengths(brief, t)
    if todo:
        for i, scored in zip(todo, scoring.score_texts(engine, brief, [texts[i] for i in todo], template, top=False)):
            s = scored.score
            got = {"I_uncopied": s.I_uncopied, "I_per_token": s.I_per_token,
                   "I_uncopied_per_token": s.I_uncopied_per_token, "n_tokens": s.n_tokens}
            got["reward"] = ranking.rank_score(got, budget)
            out[i] = got
    return out


def sample(briefs, writer_engine, judge_engine, sampler, n: int, template: str, cache: Cache, writer_sha: str,
           judge_sha: str, progress: bool = True, weights: str = "shipped") -> dict[str, list[dict]]:
    """{brief id: drafts with their judge scores and rewards}; engines are opened lazily (callables), so a fully
    cached run loads no model. `weights`: what the engines run on (assistant/copies.py), part of every key."""
    from tqdm import tqdm

    out = {}
    bar = tqdm(briefs, desc="prefer drafts", unit="brief", file=sys.stderr, disable=not progress)
    for b in bar:
        key = cache.key("prefer-drafts", writer_sha, weights, template, b.fields, sampler.to_dict(), n)
        drafts = cache.get(key)
        if drafts is None:
            drafts = write_drafts(writer_engine(), b.brief, sampler, n, template)
            cache.put(key, drafts)
        skeys = [cache.key("prefer-judge", judge_sha, weights, template, b.fields, d["text"], sampler.max_tokens) for d in drafts]
        missing = [i for i, k in enumerate(skeys) if cache.get(k) is None]
        if missing:
            got = judge_texts(judge_engine(), b.brief, [drafts[i]["text"] for i in missing], sampler.max_tokens, template)
            for i, g in zip(missing, got):
                cache.put(skeys[i], g)
        scored = [{"brief": b.id, **d, "judge": cache.get(k), "reward": cache.get(k)["reward"]}
                  for d, k in zip(drafts, skeys)]
        out[b.id] = scored
        rewards = [d["reward"] for d in scored if d["reward"] is not None]
        if rewards:
            bar.set_postfix(best=f"{max(rewards):.3f}")
    bar.close()
    return out
