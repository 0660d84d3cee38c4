"""Score every pair under every model variant (base, base + adapter, ...), with a cache.

    python -m eval pairs --pairs eval/data/pairs_factual.jsonl --out /tmp/evalout

The scorer is the app's own (assistant.scoring.score_text): same prompts, same copied-span
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

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

from assistant.copying import N_WORDS

from . import copyrule
from .pairs import Pair

log = logging.getLogger(__name__)

# Bump when scoring changes (prompts, stored fields) to invalidate caches. Not bumped when the score moved from
# 3-word to 2-word copied spans: version-2 pair and grid records carry both rules, and `copyrule.follow` reads
# them under the score's rule of today; a record without them (eval generate's older reads, a grid draft's own
# score) is scored again where it is read.
SCORER_VERSION = 2
BASE = "base"        # the name of the variant without an adapter


class EvalError(RuntimeError):
    """A problem the user can fix (bad flag, missing file); the CLI prints it as one line."""


@dataclass(frozen=True)
class Variant:
    name: str                     # "base", or the NAME of --adapter NAME=PATH
    model: str                    # catalog name or path, as given to Engine.load
    model_path: str
    model_sha256: str
    adapter_path: str | None = None
    adapter_sha256: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "model": self.model, "model_path": self.model_path,
                "model_sha256": self.model_sha256, "adapter_path": self.adapter_path,
                "adapter_sha256": self.adapter_sha256}


def parse_adapters(specs: Iterable[str]) -> list[tuple[str, Path]]:
    """["epoch5=runs/e5.gguf", "hub=OWNER/NAME"] -> [("epoch5", Path(...)), ...]; names unique and not "base".
    OWNER/NAME is a Hub adapter repo (`python -m finetune push`), downloaded and cached."""
    from assistant import catalog
    out, problems = [], []
    for spec in specs or ():
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            problems.append(f"--adapter {spec!r}: write it as NAME=PATH, e.g. epoch5=finetune/runs/e5.gguf")
        elif name == BASE or name in {n for n, _ in out}:
            problems.append(f"--adapter {spec!r}: the name {name!r} is taken; give each adapter its own name")
        elif catalog.is_hub_repo(path):
            try:
                out.append((name, catalog.resolve_adapter(path)))
            except catalog.ModelUnavailable as e:
                problems.append(f"--adapter {spec!r}: {e}")
        elif not Path(path).is_file():
            problems.append(f"--adapter {spec!r}: {path} does not exist")
        else:
            out.append((name, Path(path)))
    if problems:
        raise EvalError("; ".join(problems))
    return out


def resolve_variants(model: str | None, adapters: list[tuple[str, Path]]) -> list[Variant]:
    """The base and one variant per adapter, with file sha256s (catalog errors pass through)."""
    from assistant import catalog

    resolved = catalog.resolve(model)
    common = dict(model=resolved.name, model_path=str(resolved.path), model_sha256=resolved.sha256)
    out = [Variant(BASE, **common)]
    for name, path in adapters:
        catalog.check_gguf(path)
        out.append(Variant(name, **common, adapter_path=str(path), adapter_sha256=catalog.file_sha256(path)))
    return out


# ---- cache ---------------------------------------------------------------------------------
def default_cache_path() -> Path:
    return Path(os.environ.get("CQA_CACHE", Path.home() / ".cache" / "cqa")) / "eval-scores.jsonl"


class ScoreCache:
    """Append-only JSON Lines of {"key", "value"}; a torn last line (killed run) is skipped."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self._data: dict[str, dict] = {}
        if self.path and self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self._data[rec["key"]] = rec["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    @staticmethod
    def key(*parts) -> str:
        return hashlib.sha256(json.dumps([SCORER_VERSION, *parts], ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put(self, key: str, value: dict) -> None:
        self._data[key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")


# ---- readers: the narrow interface between eval and a model ----------------------------------
class PairReader(Protocol):
    def score_texts(self, context: str, texts: list[str]) -> list[dict]:
        """Score.summary() of each text given the prose context (conditional passes first)."""

    def close(self) -> None: ...


class EngineReader:
    """assistant's Engine + score_text: each text's two passes in one batched decode."""

    def __init__(self, engine, template: str):
        self.engine, self.template = engine, template

    def score_texts(self, context: str, texts: list[str]) -> list[dict]:
        from assistant.scoring import prompts_for, score_text

        eng = self.engine
        prompts_for(eng, None, context, self.template)   # a bad template fails before any pass
        out = []
        for t in texts:
            r = score_text(eng, None, t, context=context, template=self.template)
            out.append({**r.score.summary(), "copy_rules": r.copy_rules()})
        return out

    def close(self) -> None:
        close_engine(self.engine)


def close_engine(engine) -> None:
    """Free llama.cpp memory now rather than at garbage collection."""
    if hasattr(engine, "close"):
        engine.close()


def engine_reader_factory(template: str, n_threads: int | None = None) -> Callable[[Variant], PairReader]:
    def open_reader(v: Variant) -> PairReader:
        from assistant.engine import Engine
        return EngineReader(Engine.load(v.model, lora_path=v.adapter_path, n_threads=n_threads), template)
    return open_reader


# ---- the run ------------------------------------------------------------------------------
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


def score_pairs(pairs: list[Pair], variants: list[Variant], open_reader: Callable[[Variant], PairReader],
                template: str, cache: ScoreCache, progress: bool = True) -> PairScores:
    """Every pair's high and degraded under every variant; loads each model at most once."""
    from tqdm import tqdm

    out = PairScores()
    for v in variants:
        t0, c0 = time.perf_counter(), time.process_time()
        timing = VariantTiming()
        per_pair: dict[str, dict] = {}
        reader = None
        try:
            todo_items = []   # (pair, kinds, keys): what the cache does not hold yet
            for p in pairs:
                keys = {k: cache.key(v.model_sha256, v.adapter_sha256 or "", template, p.context, text)
                        for k, text in (("high", p.high), ("degraded", p.degraded))}
                got = {k: copyrule.follow(cache.get(key)) for k, key in keys.items()}
                per_pair[p.id] = got
                todo = [k for k in ("high", "degraded") if got[k] is None]
                timing.texts_cached += 2 - len(todo)
                if todo:
                    todo_items.append((p, todo, keys))
            if todo_items:
                t_load = time.perf_counter()
                reader = open_reader(v)
                timing.load_seconds = time.perf_counter() - t_load
                work = [(p.context, [getattr(p, k) for k in todo]) for p, todo, _ in todo_items]
                bar = tqdm(total=len(work), desc=f"{v.name:>10}", unit="pair", file=sys.stderr, disable=not progress,
                           leave=True, dynamic_ncols=True)
                many = getattr(reader, "score_many", None)   # a reader that spreads the work (Ray) takes it all
                results = many(work, bar.update) if many else (
                    _tick(bar, reader.score_texts(ctx, texts)) for ctx, texts in work)
                for (p, todo, keys), fresh in zip(todo_items, results):
                    timing.pairs_scored += 1
                    for k, summary in zip(todo, fresh):
                        cache.put(keys[k], summary)
                        per_pair[p.id][k] = copyrule.follow(summary)
                        timing.texts_scored += 1
                        timing.tokens_scored += int(summary["n_tokens"])
                bar.close()
        finally:
            if reader is not None:
                reader.close()
        timing.seconds, timing.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        out.scores[v.name] = per_pair
        out.timing[v.name] = timing
        log.info("%s: %d texts scored, %d cached, %.1f s", v.name, timing.texts_scored, timing.texts_cached,
                 timing.seconds)
    return out


def _tick(bar, value):
    bar.update(1)
    return value


# ---- the `pairs` command ----------------------------------------------------------------------
DATA = Path(__file__).resolve().parent / "data"


def default_pairs_files() -> list[Path]:
    """eval/data/pairs.jsonl when it exists, else the pair sets it is made of."""
    combined = DATA / "pairs.jsonl"
    return [combined] if combined.is_file() else sorted(DATA.glob("pairs_*.jsonl"))


def evaluate_pairs(pair_files: list[Path], out_dir: Path, *, model: str | None = None,
                   adapters: list[str] = (), template: str = "chat", cache_path: Path | None = None,
                   n_threads: int | None = None, limit: int | None = None, group: str | None = None,
                   progress: bool = True,
                   open_reader: Callable[[Variant], PairReader] | None = None,
                   variants: list[Variant] | None = None, ray: str | None = None) -> tuple[dict, list[Path]]:
    """Load pairs, score them under every variant, write report.json/.md and delta.png."""
    from . import report as rep
    from .pairs import files_info, load_pairs

    if template not in ("chat", "plain"):
        raise EvalError(f"--template {template!r}: use chat or plain")
    if not pair_files:
        raise EvalError("no pair files: pass --pairs FILE (e.g. eval/data/pairs.jsonl)")
    pairs = load_pairs(pair_files)
    if group:
        pairs = [p for p in pairs if p.group == group]
        if not pairs:
            raise EvalError(f"--group {group}: no such pairs in {', '.join(map(str, pair_files))}")
    if limit:
        pairs = pairs[:limit]
    if variants is None:
        variants = resolve_variants(model, parse_adapters(adapters))
    if ray and open_reader is None:   # spread over Ray actors, one CPU and one llama.cpp thread each
        from .ray_pairs import ray_reader_factory
        open_reader = ray_reader_factory(template, ray)
        n_threads = 1
    open_reader = open_reader or engine_reader_factory(template, n_threads)
    t0 = time.perf_counter()
    result = score_pairs(pairs, variants, open_reader, template, ScoreCache(cache_path), progress)
    meta = {
        "template": template,
        "model": {"name": variants[0].model, "path": variants[0].model_path, "sha256": variants[0].model_sha256},
        "adapters": [{"name": v.name, "path": v.adapter_path, "sha256": v.adapter_sha256} for v in variants[1:]],
        "pairs_files": files_info(pair_files),
        "n_pairs": len(pairs),
        "machine": {**rep.machine_info(), "n_threads": n_threads or int(os.environ.get("CQA_THREADS", 0)) or
                    os.cpu_count()},
        "timing": {v: t.to_json() for v, t in result.timing.items()},
        "total_seconds": time.perf_counter() - t0,
        "cache": str(cache_path) if cache_path else None,
        "copy_rule_words": N_WORDS,     # I_uncopied's copied spans: shared runs of this many words or more
        "created": rep.now(),
        "command": " ".join(["python -m eval"] + sys.argv[1:]) if sys.argv and sys.argv[0].endswith("__main__.py")
        else None,
    }
    if copyrule.has_rules(result.scores):     # the copied-span rule measured both ways (README, "2 words or 3?")
        meta["copy_rules"] = {v.name: copyrule.on_pairs(result.scores, pairs, variants[0].name,
                                                        v.name if v is not variants[0] else None)
                              for v in variants}
    report = rep.build(pairs, [v.name for v in variants], result.scores, meta)
    return report, rep.write_all(report, out_dir)
