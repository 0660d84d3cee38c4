"""May a faster copy of the weights be served? Each copy's scores against the truth, beside the shipped file's.

    python -m eval fidelity --out eval/results/fidelity          # ~20-30 min on 2 cores; cached drafts reused

The truth the adapters were trained against is transformers fp32 on the dequantized GGUF weights (finetune/
trains there), not llama.cpp on the shipped Q4_1 file, which quantizes activations to 8 bits against its
weights. So every candidate copy (assistant/copies.py: F32, F16 and BF16 dequantize Q4_1; Q8_0 requantizes
it; "+FA": the same weights with llama.cpp's flash attention, whose attention arithmetic differs) and the
shipped file (flash attention off, as it has always been served) are scored against transformers fp32, token-aligned (the engine's ids), for the
base and both shipped adapters (peft on the same weights), on 20 pair texts (eval/crosscheck.pick_pairs) and
20 drafts of the held-out briefs (written once by the shipped base, seed 0, 160 tokens, kept in drafts.jsonl).

THE GATE (written before any copy was measured; `passes` applies it): a copy may be served when, for the
base and each adapter, on the pair texts and on the drafts alike, its Pearson r of per-text I (bits/token)
with the truth is at least the shipped file's, and its per-token mean |difference| of s0 and sY (bits) is
at most the shipped file's. Which passing copy is served is the speed rule's (bench/engine.py, README).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from assistant import atomic, copies
from assistant.brief import Brief

from .crosscheck import TransformersScorer, agreement, pick_pairs
from .pairs import default_pairs_files, load_pairs

log = logging.getLogger(__name__)

N_TEXTS = 20
DRAFT_TOKENS = 160
SHIPPED = copies.SHIPPED


def passes(report: dict, copy: str) -> bool:
    """The gate, on a report's agreement table: at least as close to the truth as the shipped file, everywhere.

    >>> t = {"base": {"pairs": {"shipped": {"pearson_r_I": 0.99, "mad_bits": 0.09},
    ...                         "F16": {"pearson_r_I": 0.999, "mad_bits": 0.01}, "Q8_0": {"pearson_r_I": 0.98,
    ...                                                                                  "mad_bits": 0.05}}}}
    >>> passes({"agreement": t}, "F16"), passes({"agreement": t}, "Q8_0")
    (True, False)
    """
    for sets in report["agreement"].values():
        for by_copy in sets.values():
            ref, got = by_copy[SHIPPED], by_copy.get(copy)
            if got is None or got["pearson_r_I"] < ref["pearson_r_I"] or got["mad_bits"] > ref["mad_bits"]:
                return False
    return True


def texts(engine, briefs_file: Path, drafts_file: Path, progress: bool) -> list[dict]:
    """[{"set", "id", "prompts", "text"}]: 20 pair texts and 20 drafts (written now unless drafts_file has them)."""
    from assistant import writer
    from assistant.sampler import Sampler
    from assistant.scoring import prompts_for

    out = []
    for p in pick_pairs(load_pairs(default_pairs_files()), N_TEXTS):
        for kind, text in (("high", p.high), ("degraded", p.degraded)):
            out.append({"set": "pairs", "id": f"{p.id}/{kind}", "prompts": prompts_for(engine, None, p.context),
                        "text": text})
    briefs = [json.loads(line) for line in briefs_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    drafts = {}
    if drafts_file.exists():
        drafts = {d["id"]: d["text"] for d in map(json.loads, drafts_file.read_text(encoding="utf-8").splitlines())}
    for rec in briefs[:N_TEXTS]:
        brief = Brief(**{k: rec.get(k, "") for k in ("task", "intent", "audience", "world", "text_so_far")})
        if rec["id"] not in drafts:
            u = writer.complete(engine, brief, Sampler(seed=0, max_tokens=DRAFT_TOKENS))
            drafts[rec["id"]] = u.text
            log.info("draft %s: %d chars", rec["id"], len(u.text))
        out.append({"set": "drafts", "id": rec["id"], "prompts": prompts_for(engine, brief), "text": drafts[rec["id"]]})
    with atomic.atomic_path(drafts_file) as tmp:
        tmp.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in drafts.items()), encoding="utf-8")
    return out


def read_llama(engine, items: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(s0, sY) in bits per text, through llama.cpp."""
    from assistant.surprise import bits_from_logprobs as bits
    out = []
    for it in items:
        ids = engine.tokenize_text(it["text"])
        cond, uncond = engine.token_logprobs_pair(it["prompts"].conditional, it["prompts"].unconditional, ids)
        out.append((bits(uncond.logprobs), bits(cond.logprobs)))
    return out


def read_truth(engine, hf, items: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(s0, sY) in bits per text, through transformers fp32, on the engine's token ids."""
    from assistant.surprise import bits_from_logprobs as bits
    out = []
    for it in items:
        ids = engine.tokenize_text(it["text"])
        c, u = (engine.tokenize_prompt(it["prompts"].conditional), engine.tokenize_prompt(it["prompts"].unconditional))
        out.append((bits(hf.logprobs(u, ids)), bits(hf.logprobs(c, ids))))
    return out


def run(out: Path, variants: dict[str, Path | None], candidates: list[str], threads: int, cache_dir: Path,
        briefs_file: Path, progress: bool = True) -> dict:
    """Score every text with the truth and with each copy, per variant; the agreement table and the gate."""
    from assistant import catalog
    from assistant.engine import Engine
    from finetune.start_adapter import load_trainable

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = Engine.load(n_threads=threads, cache_dir=cache_dir)
    items = texts(base, briefs_file, out / "drafts.jsonl", progress)
    model = catalog.resolve(None, cache_dir)
    scores: dict[str, dict[str, list]] = {}
    for name, adapter in variants.items():
        hf = TransformersScorer(model.path, threads, progress)
        if adapter is not None:
            hf.model = load_trainable(hf.model, adapter, model.path).eval()
        scores.setdefault(name, {})["truth"] = read_truth(base, hf, items)
        del hf
        log.info("%s: truth read", name)
    base.close()
    made = {}
    for copy in [SHIPPED, *candidates]:
        eng = Engine.load(n_threads=threads, cache_dir=cache_dir, weights=copy)
        made[copy] = {"file": eng.model.path.name, "sha256": eng.model.sha256,
                      **({k: v for k, v in copies.record(eng.model.path).items() if k in ("seconds", "bytes")}
                         if copies.parse(copy)[0] != SHIPPED else {})}
        for name, adapter in variants.items():
            v = eng if adapter is None else eng.variant(adapter)
            scores[name][copy] = read_llama(v, items)
        eng.close()
        log.info("%s: read", copy)
    table = {}
    for name, by in scores.items():
        for s in ("pairs", "drafts"):
            idx = [i for i, it in enumerate(items) if it["set"] == s]
            truth = [by["truth"][i] for i in idx]
            row = table.setdefault(name, {}).setdefault(s, {})
            for copy in [SHIPPED, *candidates]:
                got = [by[copy][i] for i in idx]
                row[copy] = agreement([np.concatenate(g) for g in got], [np.concatenate(t) for t in truth],
                                      [float((g[0] - g[1]).mean()) for g in got],
                                      [float((t[0] - t[1]).mean()) for t in truth])
    report = {"gate": "r(I) >= shipped's and per-token MAD <= shipped's, vs transformers fp32, for every variant and "
                      "text set", "variants": {k: str(v) if v else None for k, v in variants.items()},
              "copies": made, "agreement": table, "threads": threads,
              "seconds": round(time.perf_counter() - t0, 1)}
    report["passing"] = [c for c in candidates if passes(report, c)]
    with atomic.atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    with atomic.atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")
    return report


def markdown(report: dict) -> str:
    lines = ["# May a faster copy be served? (`python -m eval fidelity`)", "", f"Gate: {report['gate']}.", "",
             "| variant | texts | copy | r(I) vs fp32 | per-token MAD, bits | max abs, bits | mean diff, bits |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, sets in report["agreement"].items():
        for s, by in sets.items():
            for copy, a in by.items():
                lines.append(f"| {name} | {s} | {copy} | {a['pearson_r_I']:.4f} | {a['mad_bits']:.4f} | "
                             f"{a['max_abs_bits']:.3f} | {a['mean_diff_bits']:+.4f} |")
    lines += ["", "Copies made here from the packaged file (gguf-py): " + ", ".join(
        f"{k}: {v['file']} ({v.get('seconds', 0)} s)" for k, v in report["copies"].items() if k != SHIPPED),
        "", f"**Passing the gate: {', '.join(report['passing']) or 'none'}.** Run took {report['seconds']} s "
        f"with {report['threads']} threads.", ""]
    return "\n".join(lines)
