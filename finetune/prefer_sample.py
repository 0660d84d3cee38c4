"""Drafts of the training briefs from a writer, and the judge's reward of each: cached, resumable, with a bar.

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --stage sample   # ~6-8 s a draft on 2 cores

Drafts come from the app's own engine and writer code (`assistant.writer.best_of`: N drafts of one brief,
seeds s..s+N-1, the passage at once under "Passage:", live-scored), at the grid's budget and sampler. Each
passage is then scored by the judge as `/score` scores it (`assistant.writer.score`: the brief alone, both
passes), and its reward is the ranking score, I over uncopied tokens per token of the budget
(`assistant.ranking.rank_score`). Both steps go to an append-only JSON Lines cache keyed by what made them
(writer or judge adapter sha256, template, brief, sampler), so an interrupted run resumes and a second
recipe reuses the first one's drafts.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from assistant import ranking

CACHE_VERSION = 1


class Cache:
    """Append-only JSON Lines of {"key", "value"}; a torn last line (a killed run) is skipped."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._data: dict[str, dict] = {}
        if self.path and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    self._data[rec["key"]] = rec["value"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(*parts) -> str:
        return hashlib.sha256(json.dumps([CACHE_VERSION, *parts], ensure_ascii=False, sort_keys=True).encode()).hexdigest()

    def get(self, key: str):
        return self._data.get(key)

    def put(self, key: str, value) -> None:
        self._data[key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")


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


def judge_text(engine, brief, text: str, budget: int, template: str) -> dict:
    """The judge's score of a passage as /score gives it, and its reward (bits per budget token)."""
    from assistant import writer

    if not text.strip():
        return {"reward": None}
    s = writer.score(engine, brief, text, template).score
    out = {"I_uncopied": s.I_uncopied, "I_per_token": s.I_per_token, "I_uncopied_per_token": s.I_uncopied_per_token,
           "n_tokens": s.n_tokens}
    out["reward"] = ranking.rank_score(out, budget)
    return out


def sample(briefs, writer_engine, judge_engine, sampler, n: int, template: str, cache: Cache, writer_sha: str,
           judge_sha: str, progress: bool = True) -> dict[str, list[dict]]:
    """{brief id: drafts with their judge scores and rewards}; engines are opened lazily (callables), so a fully
    cached run loads no model."""
    from tqdm import tqdm

    out = {}
    bar = tqdm(briefs, desc="prefer drafts", unit="brief", file=sys.stderr, disable=not progress)
    for b in bar:
        key = Cache.key("prefer-drafts", writer_sha, template, b.fields, sampler.to_dict(), n)
        drafts = cache.get(key)
        if drafts is None:
            drafts = write_drafts(writer_engine(), b.brief, sampler, n, template)
            cache.put(key, drafts)
        scored = []
        for d in drafts:
            skey = Cache.key("prefer-judge", judge_sha, template, b.fields, d["text"], sampler.max_tokens)
            got = cache.get(skey)
            if got is None:
                got = judge_text(judge_engine(), b.brief, d["text"], sampler.max_tokens, template)
                cache.put(skey, got)
            scored.append({"brief": b.id, **d, "judge": got, "reward": got["reward"]})
        out[b.id] = scored
        rewards = [d["reward"] for d in scored if d["reward"] is not None]
        if rewards:
            bar.set_postfix(best=f"{max(rewards):.3f}")
    bar.close()
    return out
