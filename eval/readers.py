"""Readers: the models that score texts for eval, and the one cached loop the pairs, generate and grid commands
read through.

    python -m eval pairs --ray auto --out eval/out/pairs-ray     # the entry point picks local or Ray readers

A reader scores texts under a prompt (a brief, or a pair's prose context) with the app's own scorer,
`assistant.scoring.score_text`: same prompts, same copied-span rule, same numbers as the app. `read` is the
loop every command shares: each text's score is looked up in the score cache first, a reader is opened only
when something is missing, and every fresh score goes into the cache at once, so an interrupted run resumes
where it stopped. Where readers run is decided at the entry point (`eval/__main__.py`): `LocalReaders` in
this process, or `eval.ray_readers.RayReaders` on Ray actors; the commands below it only call `open`.

Generate and grid drafts are read by fixed readers (`ReaderSpec`) that wrote and picked nothing: the base
model with no adapter, plus Gemma 3 270M (another model family) when its package is installed.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from . import copyrule
from .cache import ScoreCache
from .variants import Variant

SECOND_READER = "gemma3-270m"   # judged by another model family too, when installed


class Reader(Protocol):
    def score_texts(self, brief, context: str | None, texts: list[str]) -> list[dict]:
        """Each text's Score.summary() with its "copy_rules", read under `brief` (an assistant Brief, or None)
        and `context` (a pair's prose context, or None)."""

    def close(self) -> None: ...


class Readers(Protocol):
    """Where readers run (chosen at the entry point): opens one per model, adapter and template."""
    n_threads: int | None    # llama.cpp threads per reader, for the report (None: all cores)

    def open(self, model: str, adapter: str | None, template: str) -> Reader: ...


class EngineReader:
    """assistant's Engine + score_texts: the texts of one brief share its two decoded prompts."""

    def __init__(self, engine, template: str):
        self.engine, self.template = engine, template

    def score_texts(self, brief, context: str | None, texts: list[str]) -> list[dict]:
        """Every text under one brief or context: its prompts decoded once (assistant.scoring.score_texts)."""
        from assistant.scoring import score_texts

        got = score_texts(self.engine, brief, list(texts), self.template, context=context, top=False)
        return [{**r.score.summary(), "copy_rules": r.copy_rules()} for r in got]

    def close(self) -> None:
        self.engine.close()     # free llama.cpp memory now rather than at garbage collection


@dataclass(frozen=True)
class LocalReaders:
    """Readers in this process, each its own engine."""
    n_threads: int | None = None    # llama.cpp CPU threads per engine (None: all cores)

    def open(self, model: str, adapter: str | None, template: str) -> Reader:
        from assistant.engine import Engine
        return EngineReader(Engine.load(model, lora_path=adapter, n_threads=self.n_threads), template)


# ---- the cached loop -------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """Texts read under one prompt, in one go (a pair's two texts share their context's KV cache)."""
    keys: tuple[str, ...]          # the cache key of each text's score
    texts: tuple[str, ...]
    brief: object = None           # an assistant Brief (generate, grid), or None
    context: str | None = None     # a pair's prose context, or None


@dataclass
class ReadCounts:
    load_seconds: float = 0.0      # opening the reader (0 when the cache held everything)
    jobs_scored: int = 0           # jobs with at least one text not in the cache
    texts_scored: int = 0
    texts_cached: int = 0
    tokens_scored: int = 0         # text tokens, each scored in two passes


def _present(value: dict | None) -> bool:
    return value is not None


def read(jobs: list[Job], cache: ScoreCache, open_reader: Callable[[], Reader], *,
         keep: Callable[[dict], dict] | None = None, fresh: Callable[[dict | None], bool] = _present,
         desc: str = "read", unit: str = "text", progress: bool = True) -> tuple[list[list[dict]], ReadCounts]:
    """Every job's text scores, in job order, each under the score's copy rule (`copyrule.follow`).

    A cached value counts when `fresh(value)`; the others are scored by one reader, opened only if needed,
    and `keep(summary)` (default: all of it) goes into the cache. A reader with `score_many(work, tick)`
    (Ray) takes all the work at once; any other scores job by job, each job cached as soon as it is read."""
    from tqdm import tqdm

    counts, out, todo = ReadCounts(), [], []    # todo: (job index, positions of the texts to score)
    for j, job in enumerate(jobs):
        got = [cache.get(k) for k in job.keys]
        missing = [i for i, g in enumerate(got) if not fresh(g)]
        out.append([None if i in missing else copyrule.follow(g) for i, g in enumerate(got)])
        counts.texts_cached += len(got) - len(missing)
        if missing:
            todo.append((j, missing))
    if not todo:
        return out, counts
    t0 = time.perf_counter()
    reader = open_reader()
    counts.load_seconds = time.perf_counter() - t0
    try:
        bar = tqdm(total=len(todo), desc=desc, unit=unit, file=sys.stderr, disable=not progress, leave=True,
                   dynamic_ncols=True)
        work = [(jobs[j].brief, jobs[j].context, [jobs[j].texts[i] for i in missing]) for j, missing in todo]
        many = getattr(reader, "score_many", None)
        results = many(work, bar.update) if many else (_tick(bar, reader.score_texts(*w)) for w in work)
        for (j, missing), scores in zip(todo, results):
            counts.jobs_scored += 1
            for i, summary in zip(missing, scores):
                value = keep(summary) if keep else summary
                cache.put(jobs[j].keys[i], value)
                out[j][i] = copyrule.follow(value)
                counts.texts_scored += 1
                counts.tokens_scored += int(summary["n_tokens"])
        bar.close()
    finally:
        reader.close()
    return out, counts


def _tick(bar, value):
    bar.update(1)
    return value


# ---- the fixed readers of generate and grid ----------------------------------------------------
@dataclass(frozen=True)
class ReaderSpec:
    name: str
    model: str
    path: str
    sha256: str
    template: str   # "plain" for a reader whose GGUF has no chat template (e.g. a base, not -it, model)


def has_chat_template(path: str) -> bool:
    from gguf import GGUFReader

    from assistant.engine import GGUF_CHAT_TEMPLATE
    return GGUFReader(path, "r").get_field(GGUF_CHAT_TEMPLATE) is not None


def resolve_readers(names: list[str], base: Variant, template: str) -> tuple[list[ReaderSpec], list[str]]:
    """Reader specs, and notes on readers left out (the optional second one, not installed) or
    read with the plain template (their GGUF has no chat template)."""
    from assistant import catalog

    notes = []
    if names:
        wanted, optional = list(names), set()
    else:
        wanted, optional = [base.model, SECOND_READER], {SECOND_READER}
    specs = []
    for name in dict.fromkeys(wanted):
        try:
            m = catalog.resolve(name)
        except catalog.ModelUnavailable as e:
            if name not in optional:
                raise
            notes.append(f"reader {name} left out: {e}")
            continue
        if m.sha256 in {s.sha256 for s in specs}:
            continue
        t = template
        if t == "chat" and not has_chat_template(str(m.path)):
            t = "plain"
            notes.append(f"reader {name} has no chat template in its GGUF: it reads with the plain template")
        specs.append(ReaderSpec(name, name, str(m.path), m.sha256, t))
    return specs, notes


def read_drafts(drafts: list[tuple[str, str, object]], spec: ReaderSpec, readers: Readers, cache: ScoreCache, *,
                keep: Callable[[dict], dict], fresh: Callable[[dict | None], bool] = _present,
                progress: bool = True) -> list[dict | None]:
    """One fixed reader's scores of drafts given as (cache key, text, brief), in order; a draft without a
    passage (an immediate end of text) gets None and is never read."""
    idx = [i for i, (_, text, _) in enumerate(drafts) if text.strip()]
    jobs = [Job((drafts[i][0],), (drafts[i][1],), brief=drafts[i][2]) for i in idx]
    got, _ = read(jobs, cache, lambda: readers.open(spec.model, None, spec.template), keep=keep, fresh=fresh,
                  desc=f"read {spec.name}", unit="draft", progress=progress)
    out: list[dict | None] = [None] * len(drafts)
    for i, (score,) in zip(idx, got):
        out[i] = score
    return out
