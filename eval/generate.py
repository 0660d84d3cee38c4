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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from assistant import copying

from . import copyrule, stats, textstats
from .pairs import BriefRecord, files_info, load_briefs
from .runner import (DATA, EvalError, ScoreCache, Variant, close_engine, default_cache_path, parse_adapters,
                     resolve_variants)

log = logging.getLogger(__name__)

SECOND_READER = "gemma3-270m"   # judged by another model family too, when installed
NOTES_TOKENS = 864              # a CQA-tuned model's notes before its passage: ~525 tokens on the corpus, up to ~650
SCORE_FIELDS = ("I_per_token", "I_uncopied_per_token", "H_X_per_token", "H_X_given_Y_per_token")


@dataclass(frozen=True)
class ReaderSpec:
    name: str
    model: str
    path: str
    sha256: str
    template: str   # "plain" for a reader whose GGUF has no chat template (e.g. a base, not -it, model)


class DraftWriter(Protocol):
    def draft(self, brief, sampler, notes_tokens: int = 0) -> dict:
        """{"text", "n_tokens", "stop_reason", "notes", "notes_tokens"} for one draft: `text` is the passage
        (a tuned model's notes apart), at most sampler.max_tokens tokens; the notes may use notes_tokens more."""

    def close(self) -> None: ...


class TextReader(Protocol):
    def score(self, brief, text: str) -> dict:
        """Score.summary() of `text` under `brief`."""

    def close(self) -> None: ...


class EngineWriter:
    def __init__(self, engine, template: str):
        self.engine, self.template = engine, template

    def draft(self, brief, sampler, notes_tokens: int = 0) -> dict:
        from assistant.writer import HEADER_ADDED, complete

        eng, budget = self.engine, sampler.max_tokens
        # as the app writes it: "Passage:" is added when the model ends its turn after its notes
        u = complete(eng, brief, dataclasses.replace(sampler, max_tokens=budget + notes_tokens), self.template)
        notes, passage, added = u.notes, u.text, HEADER_ADDED in u.notice
        ids = eng.tokenize_text(passage) if notes else list(u.ids or eng.tokenize_text(passage))
        stop = u.stop_reason
        if len(ids) > budget:   # the same passage budget for every variant, notes or not
            passage, ids, stop = eng.pieces(ids[:budget])[2], ids[:budget], "length"
        return {"text": passage, "n_tokens": len(ids), "stop_reason": stop, "notes": notes,
                "notes_tokens": len(eng.tokenize_text(notes)) if notes else 0, "passage_header_added": added}

    def close(self) -> None:
        close_engine(self.engine)


class EngineTextReader:
    def __init__(self, engine, template: str):
        self.engine, self.template = engine, template

    def score(self, brief, text: str) -> dict:
        from assistant.scoring import score_text
        r = score_text(self.engine, brief, text, template=self.template)
        return {**r.score.summary(), "copy_rules": r.copy_rules()}

    def close(self) -> None:
        close_engine(self.engine)


def engine_openers(template: str, n_threads: int | None):
    from assistant.engine import Engine

    def writer(v: Variant) -> DraftWriter:
        return EngineWriter(Engine.load(v.model, lora_path=v.adapter_path, n_threads=n_threads), template)

    def reader(r: ReaderSpec) -> TextReader:
        return EngineTextReader(Engine.load(r.model, n_threads=n_threads), r.template)
    return writer, reader


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


def _brief(rec: BriefRecord):
    from assistant.brief import Brief
    return Brief(**rec.fields)


def _lazy(cache: dict, key, opener, arg):
    if key not in cache:
        cache[key] = opener(arg)
    return cache[key]


def generate(briefs: list[BriefRecord], variants: list[Variant], readers: list[ReaderSpec], n: int, sampler,
             template: str, cache: ScoreCache, open_writer: Callable, open_reader: Callable,
             progress: bool = True, notes_tokens: int = NOTES_TOKENS) -> dict:
    """Drafts and reader scores; returns {"drafts": [...], "timing": {...}} (see summarise).
    Adapters (CQA-tuned models reason first) get `notes_tokens` more for their notes; readers score the passage."""
    from tqdm import tqdm

    drafts, timing = [], {}
    for v in variants:
        t0, opened = time.perf_counter(), {}
        extra = notes_tokens if v.adapter_path else 0
        try:
            for rec in tqdm(briefs, desc=f"write {v.name}", unit="brief", file=sys.stderr, disable=not progress):
                for seed in range(n):
                    s = dataclasses.replace(sampler, seed=seed)   # same settings, seeds 0..n-1
                    key = cache.key("draft", v.model_sha256, v.adapter_sha256 or "", template, rec.fields, s.to_dict(),
                                    {"notes_tokens": extra, "passage_header": "added after notes"})
                    got = cache.get(key)
                    if got is None:
                        got = _lazy(opened, 0, open_writer, v).draft(_brief(rec), s, notes_tokens=extra)
                        cache.put(key, got)
                    drafts.append({"brief": rec.id, "seed": seed, "variant": v.name, **got, "scores": {}})
        finally:
            for w in opened.values():
                w.close()
        timing[f"write {v.name}"] = time.perf_counter() - t0
    by_id = {rec.id: rec for rec in briefs}
    for r in readers:
        t0, opened = time.perf_counter(), {}
        try:
            for d in tqdm(drafts, desc=f"read {r.name}", unit="draft", file=sys.stderr, disable=not progress):
                if not d["text"].strip():
                    d["scores"][r.name] = None   # an empty draft (immediate end of text): nothing to score
                    continue
                key = cache.key("read", r.sha256, r.template, by_id[d["brief"]].fields, d["text"])
                got = cache.get(key)
                if got is None or "copy_rules" not in got:   # a read cached before it kept both copy rules
                    full = _lazy(opened, 0, open_reader, r).score(_brief(by_id[d["brief"]]), d["text"])
                    got = {**{k: full[k] for k in ("n_tokens", "n_copied", *SCORE_FIELDS)},
                           "copy_rules": full.get("copy_rules")}
                    cache.put(key, got)
                d["scores"][r.name] = copyrule.follow(got)
        finally:
            for x in opened.values():
                x.close()
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
             "brief_overlap": stats.mean(x for x in (copying.brief_overlap(d["text"], _brief(by_id[d["brief"]]).text())
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


def run_generate(args) -> list[Path]:
    """The CLI command: load briefs, resolve models, generate, score, write the three files."""
    from assistant.sampler import Sampler

    from . import report as rep
    from .transcript import markdown_summary, markdown_transcript

    files = args.briefs or [DATA / "briefs.jsonl"]
    if args.n < 1:
        raise EvalError(f"--n {args.n}: ask for at least one draft per brief")
    briefs = load_briefs(files)[: args.limit or None]
    variants = resolve_variants(args.model, parse_adapters(args.adapter))
    readers, notes = resolve_readers(args.reader, variants[0], args.template)
    sampler = Sampler(temperature=args.temperature, max_tokens=args.max_tokens)
    cache_path = None if args.no_cache else (args.cache or default_cache_path())
    writer, reader = engine_openers(args.template, args.threads)
    t0 = time.perf_counter()
    if args.notes_tokens < 0:
        raise EvalError(f"--notes-tokens {args.notes_tokens}: must be 0 or more")
    res = generate(briefs, variants, readers, args.n, sampler, args.template, ScoreCache(cache_path), writer, reader,
                   progress=not args.quiet, notes_tokens=args.notes_tokens)
    names, rnames = [v.name for v in variants], [r.name for r in readers]
    result = {"variants": names, "readers": [r.__dict__ for r in readers], "notes": notes,
              "template": args.template, "sampler": sampler.to_dict(), "notes_tokens": args.notes_tokens,
              "n_per_brief": args.n,
              "briefs_files": files_info(files), "n_briefs": len(briefs),
              "model": {"name": variants[0].model, "path": variants[0].model_path, "sha256": variants[0].model_sha256},
              "adapters": [{"name": v.name, "path": v.adapter_path, "sha256": v.adapter_sha256} for v in variants[1:]],
              **summarise(res["drafts"], names, rnames, {b.id: b for b in briefs}), "drafts": res["drafts"],
              "machine": rep.machine_info(), "timing": {**res["timing"], "total": time.perf_counter() - t0},
              "created": rep.now()}
    out = Path(args.out)
    paths = [out / "generate.json", out / "generate.md", out / "transcript.md"]
    rep.write_json(result, paths[0])
    rep.write_atomic(paths[1], markdown_summary(result))
    rep.write_atomic(paths[2], markdown_transcript(result, briefs))
    for note in notes:
        print(note)
    return paths

