"""Drafts from the base and from each adapter on the same briefs and seeds, scored by fixed readers.

    python -m eval generate --briefs eval/data/briefs.jsonl --n 2 --adapter epoch5=models/cqa/adapter.gguf --out eval/out/generate

Every variant writes K drafts per brief with seeds 0..K-1 and the same sampler settings.
A CQA-tuned model reasons first ("Notes:" ... "Passage:"): adapters get --notes-tokens more
tokens for the notes, and only the passage, cut to --max-tokens like every other draft, is
read and counted.
Each draft is then scored by the same reader models (the base by default, plus
Gemma 3 270M when its package is installed), so a tuned model is not only judged by
itself. Per variant: mean I, I over uncopied tokens, H(X), H(X|Y) (bits/token, per reader),
distinct-2, repetition rate (seq-rep-4), length. Against the base, per reader: the mean
difference of I per brief (seeds averaged), one-sided Wilcoxon p and Cohen's d_z.
Drafts and scores are cached like the pair scores, so a re-run only does what is new.
Writes DIR/generate.json, DIR/generate.md and DIR/transcript.md (drafts side by side).
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Protocol

from assistant import atomic, copying
from assistant.errors import BadInput

from . import stats, textstats
from .cache import Lazy, ScoreCache
from .pairs import BriefRecord, default_briefs_files, files_info, load_briefs
from .readers import Readers, ReaderSpec, read_drafts, resolve_readers
from .settings import Settings
from .variants import Variant, parse_adapters, resolve_variants
from .writers import NOTES_TOKENS, EngineWriter

log = logging.getLogger(__name__)

SCORE_FIELDS = ("I_per_token", "I_uncopied_per_token", "H_X_per_token", "H_X_given_Y_per_token")


class DraftWriter(Protocol):
    def draft(self, brief, sampler, notes_tokens: int = 0) -> dict:
        """{"text", "n_tokens", "stop_reason", "notes", "notes_tokens"} for one draft: `text` is the passage
        (a tuned model's notes apart), at most sampler.max_tokens tokens; the notes may use notes_tokens more."""

    def close(self) -> None: ...


def _kept(full: dict) -> dict:
    """What the cache keeps of a read (the record format of "read" entries)."""
    return {**{k: full[k] for k in ("n_tokens", "n_copied", *SCORE_FIELDS)}, "copy_rules": full.get("copy_rules")}


def _has_rules(got: dict | None) -> bool:
    return got is not None and "copy_rules" in got     # a read cached before it kept both copy rules: read again


def generate(briefs: list[BriefRecord], variants: list[Variant], reader_specs: list[ReaderSpec], n: int, sampler,
             template: str, cache: ScoreCache, open_writer: Callable[[Variant], DraftWriter], readers: Readers,
             progress: bool = True, notes_tokens: int = NOTES_TOKENS) -> dict:
    """Drafts and reader scores; returns {"drafts": [...], "timing": {...}} (see summarise).
    Adapters (CQA-tuned models reason first) get `notes_tokens` more for their notes; readers score the passage."""
    from tqdm import tqdm

    drafts, timing = [], {}
    for v in variants:
        t0 = time.perf_counter()
        extra = notes_tokens if v.adapter_path else 0
        with Lazy(lambda: open_writer(v)) as writer:
            for rec in tqdm(briefs, desc=f"write {v.name}", unit="brief", file=sys.stderr, disable=not progress):
                for seed in range(n):
                    s = dataclasses.replace(sampler, seed=seed)   # same settings, seeds 0..n-1
                    key = cache.key("draft", v.model_sha256, v.adapter_sha256 or "", template, rec.fields, s.to_dict(),
                                    {"notes_tokens": extra, "passage_header": "added after notes"})
                    got = cache.get(key)
                    if got is None:
                        got = writer().draft(rec.brief(), s, notes_tokens=extra)
                        cache.put(key, got)
                    drafts.append({"brief": rec.id, "seed": seed, "variant": v.name, **got, "scores": {}})
        timing[f"write {v.name}"] = time.perf_counter() - t0
    by_id = {rec.id: rec for rec in briefs}
    for r in reader_specs:
        t0 = time.perf_counter()
        items = [(cache.key("read", r.sha256, r.template, by_id[d["brief"]].fields, d["text"]), d["text"],
                  by_id[d["brief"]].brief()) for d in drafts]
        for d, score in zip(drafts, read_drafts(items, r, readers, cache, keep=_kept, fresh=_has_rules,
                                                progress=progress)):
            d["scores"][r.name] = score      # None: an empty draft (immediate end of text), nothing to score
        timing[f"read {r.name}"] = time.perf_counter() - t0
    return {"drafts": drafts, "timing": timing}


def summarise(drafts: list[dict], variants: list[str], readers: list[str], by_id: dict | None = None) -> dict:
    """Per variant: text statistics and per-reader mean scores; per adapter: paired test vs base."""
    out = {"summary": {}, "vs_base": {}}
    for v in variants:
        ds = [d for d in drafts if d["variant"] == v]
        ws = [textstats.words(d["text"]) for d in ds]
        reps = [x for x in (textstats.repetition_rate(w, 4) for w in ws) if x is not None]
        per = [x for x in (textstats.distinct_n([w], 2) for w in ws) if x is not None]
        s = {"n": len(ds), "tokens": stats.mean(d["n_tokens"] for d in ds), "words": stats.mean(len(w) for w in ws),
             "stopped_at_eos": stats.mean(d["stop_reason"] == "eos" for d in ds),
             "with_notes": stats.mean(bool(d.get("notes")) for d in ds),
             "with_passage": stats.mean(bool(d["text"].strip()) for d in ds),
             "passage_header_added": stats.mean(bool(d.get("passage_header_added")) for d in ds),
             "notes_tokens": stats.mean(d.get("notes_tokens", 0) for d in ds if d.get("notes")) if any(
                 d.get("notes") for d in ds) else None,
             "distinct_2": stats.mean(per), "distinct_2_pooled": textstats.distinct_n(ws, 2),
             "repetition_rate": stats.mean(reps),
             "brief_overlap": stats.mean(x for x in (copying.brief_overlap(d["text"], by_id[d["brief"]].brief().text())
                                                     for d in ds) if x is not None) if by_id else None,
             "readers": {}}
        for r in readers:
            sc = [d["scores"][r] for d in ds if d["scores"].get(r)]
            s["readers"][r] = {"n_scored": len(sc), **{f: stats.mean(x[f] for x in sc) for f in SCORE_FIELDS}}
        out["summary"][v] = s
    base = variants[0]
    for a in variants[1:]:
        out["vs_base"][a] = {}
        for r in readers:
            per_brief = {}
            for d in drafts:
                if d["variant"] in (base, a) and d["scores"].get(r):
                    by_variant = per_brief.setdefault(d["brief"], {})
                    by_variant.setdefault(d["variant"], []).append(d["scores"][r]["I_per_token"])
            both = [b for b, x in per_brief.items() if base in x and a in x]
            res = stats.delta_delta([stats.mean(per_brief[b][a]) for b in both],
                                    [stats.mean(per_brief[b][base]) for b in both])
            out["vs_base"][a][r] = {"n_briefs": res["n"], "mean_I_difference": res["mean"],
                                    "wilcoxon_p": res["wilcoxon_p"], "cohens_d": res["cohens_d"]}
    return out


def run_generate(args, settings: Settings, readers: Readers) -> list[Path]:
    """The CLI command: load briefs, resolve models, generate, score, write the three files."""
    from assistant.engine import Engine
    from assistant.sampler import Sampler

    from . import report as rep
    from .transcript import markdown_summary, markdown_transcript

    problems = []
    if args.n < 1:
        problems.append(f"--n {args.n}: ask for at least one draft per brief")
    if args.notes_tokens < 0:
        problems.append(f"--notes-tokens {args.notes_tokens}: must be 0 or more")
    if problems:
        raise BadInput("; ".join(problems))
    files = args.briefs or default_briefs_files()
    briefs = load_briefs(files)[: args.limit or None]
    variants = resolve_variants(settings.model, parse_adapters(args.adapter))
    reader_specs, notes = resolve_readers(args.reader, variants[0], settings.template)
    sampler = Sampler(temperature=args.temperature, max_tokens=args.max_tokens)

    def open_writer(v: Variant) -> DraftWriter:
        return EngineWriter(Engine.load(v.model, lora_path=v.adapter_path, n_threads=settings.threads),
                            settings.template)

    t0 = time.perf_counter()
    res = generate(briefs, variants, reader_specs, args.n, sampler, settings.template, ScoreCache(settings.cache),
                   open_writer, readers, progress=settings.progress, notes_tokens=args.notes_tokens)
    names, rnames = [v.name for v in variants], [r.name for r in reader_specs]
    result = {"variants": names, "readers": [r.__dict__ for r in reader_specs], "notes": notes,
              "template": settings.template, "sampler": sampler.to_dict(), "notes_tokens": args.notes_tokens,
              "n_per_brief": args.n,
              "briefs_files": files_info(files), "n_briefs": len(briefs),
              "model": {"name": variants[0].model, "path": variants[0].model_path, "sha256": variants[0].model_sha256},
              "adapters": [{"name": v.name, "path": v.adapter_path, "sha256": v.adapter_sha256} for v in variants[1:]],
              **summarise(res["drafts"], names, rnames, {b.id: b for b in briefs}), "drafts": res["drafts"],
              "machine": rep.machine_info(), "timing": {**res["timing"], "total": time.perf_counter() - t0},
              "created": rep.now()}
    out = Path(args.out)
    paths = [out / "generate.json", out / "generate.md", out / "transcript.md"]
    rep.save_json(paths[0], result)
    atomic.write_text(paths[1], markdown_summary(result))
    atomic.write_text(paths[2], markdown_transcript(result, briefs))
    for note in notes:
        print(note)
    return paths
