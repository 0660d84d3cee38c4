"""`python -m eval pairs`: score every pair under every model variant (base, base + adapter, ...), with a cache,
and write the report.

    python -m eval pairs --pairs eval/data/pairs_factual.jsonl --out /tmp/evalout

The scorer is the app's own (eval.readers: assistant.scoring.score_text): same prompts, same copied-span
rule, same numbers. Speed, on a 2-core CPU where a log-prob pass runs ~150 tokens/s:
  * one model load per variant;
  * per pair, the conditional passes of `high` and `degraded` run back to back, so the
    engine reuses the KV cache of the shared context prompt, then both unconditional passes
    (which share the neutral prompt);
  * every text's numbers go to an append-only JSON Lines cache keyed by model sha256,
    adapter sha256, template, context and text: a re-run, or a run that adds one adapter,
    only scores what is new, and a fully cached variant never loads its model.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from assistant.copying import N_WORDS
from assistant.errors import BadInput

from . import copyrule
from . import report as rep
from .cache import ScoreCache
from .pairs import Pair, files_info, load_pairs
from .readers import Job, LocalReaders, Readers, read
from .settings import Settings
from .variants import Variant, parse_adapters, resolve_variants

log = logging.getLogger(__name__)


@dataclass
class VariantTiming:
    seconds: float = 0.0       # wall time including the model load
    cpu_seconds: float = 0.0   # CPU time of all threads: what the work costs on an idle machine
    load_seconds: float = 0.0
    pairs_scored: int = 0      # pairs with at least one text not in the cache
    texts_scored: int = 0
    texts_cached: int = 0
    tokens_scored: int = 0     # text tokens, each scored in two passes

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["seconds_per_scored_pair"] = self.seconds / self.pairs_scored if self.pairs_scored else None
        return d


@dataclass
class PairScores:
    """scores[variant][pair id] = {"high": summary, "degraded": summary}."""
    scores: dict[str, dict[str, dict]] = field(default_factory=dict)
    timing: dict[str, VariantTiming] = field(default_factory=dict)


def score_pairs(pairs: list[Pair], variants: list[Variant], readers: Readers, template: str, cache: ScoreCache,
                progress: bool = True) -> PairScores:
    """Every pair's high and degraded under every variant; loads each model at most once."""
    out = PairScores()
    for v in variants:
        t0, c0 = time.perf_counter(), time.process_time()
        jobs = [Job(tuple(cache.key(v.model_sha256, v.adapter_sha256 or "", template, p.context, text)
                          for text in (p.high, p.degraded)), (p.high, p.degraded), context=p.context) for p in pairs]
        got, n = read(jobs, cache, lambda: readers.open(v.model, v.adapter_path, template), desc=f"{v.name:>10}",
                      unit="pair", progress=progress)
        out.scores[v.name] = {p.id: {"high": high, "degraded": degraded} for p, (high, degraded) in zip(pairs, got)}
        timing = VariantTiming(load_seconds=n.load_seconds, pairs_scored=n.jobs_scored, texts_scored=n.texts_scored,
                               texts_cached=n.texts_cached, tokens_scored=n.tokens_scored)
        timing.seconds, timing.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        out.timing[v.name] = timing
        log.info("%s: %d texts scored, %d cached, %.1f s", v.name, timing.texts_scored, timing.texts_cached,
                 timing.seconds)
    return out


def evaluate_pairs(pair_files: list[Path], out_dir: Path, settings: Settings = Settings(),
                   readers: Readers | None = None, *, adapters: list[str] = (), limit: int | None = None,
                   group: str | None = None, variants: list[Variant] | None = None) -> tuple[dict, list[Path]]:
    """Load pairs, score them under every variant, write report.json/.md and delta.png.
    `readers` None: in this process, with settings.threads threads."""
    if not pair_files:
        raise BadInput("no pair files: pass --pairs FILE (e.g. eval/data/pairs.jsonl)")
    pairs = load_pairs(pair_files)
    if group:
        pairs = [p for p in pairs if p.group == group]
        if not pairs:
            raise BadInput(f"--group {group}: no such pairs in {', '.join(map(str, pair_files))}")
    if limit:
        pairs = pairs[:limit]
    if variants is None:
        variants = resolve_variants(settings.model, parse_adapters(adapters))
    readers = readers or LocalReaders(settings.threads)
    t0 = time.perf_counter()
    result = score_pairs(pairs, variants, readers, settings.template, ScoreCache(settings.cache), settings.progress)
    meta = {
        "template": settings.template,
        "model": {"name": variants[0].model, "path": variants[0].model_path, "sha256": variants[0].model_sha256},
        "adapters": [{"name": v.name, "path": v.adapter_path, "sha256": v.adapter_sha256} for v in variants[1:]],
        "pairs_files": files_info(pair_files),
        "n_pairs": len(pairs),
        "machine": {**rep.machine_info(), "n_threads": readers.n_threads or os.cpu_count()},
        "timing": {v: t.to_json() for v, t in result.timing.items()},
        "total_seconds": time.perf_counter() - t0,
        "cache": str(settings.cache) if settings.cache else None,
        "copy_rule_words": N_WORDS,     # I_uncopied's copied spans: shared runs of this many words or more
        "created": rep.now(),
        "command": settings.command,
    }
    if copyrule.has_rules(result.scores):     # the copied-span rule measured both ways (README, "2 words or 3?")
        meta["copy_rules"] = {v.name: copyrule.on_pairs(result.scores, pairs, variants[0].name,
                                                        v.name if v is not variants[0] else None)
                              for v in variants}
    report = rep.build(pairs, [v.name for v in variants], result.scores, meta)
    return report, rep.write_all(report, out_dir)


def print_summary(report: dict) -> None:
    """What `python -m eval pairs` prints: per group the validation rates and Δ(ΔI), then the timing."""
    for g, s in report["groups"].items():
        line = ", ".join(f"{v}: {100 * s['validation_rate'][v]:.0f}% valid, mean ΔI {s['mean_delta_I'][v]:+.3f}"
                         for v in report["variants"])
        print(f"{g} (n={s['n']}): {line}")
        for a, d in s["delta_delta"].items():
            p = "–" if d["wilcoxon_p"] is None else f"{d['wilcoxon_p']:.3g}"
            dz = "–" if d["cohens_d"] is None else f"{d['cohens_d']:+.2f}"
            print(f"  {a} vs base: Δ(ΔI) {d['mean']:+.3f} bits/token, Wilcoxon p={p}, d_z={dz}")
    for v, t in report["timing"].items():
        print(f"time {v}: {t['seconds']:.1f} s wall, {t['cpu_seconds']:.1f} s CPU ({t['texts_scored']} texts scored, "
              f"{t['texts_cached']} cached)")
