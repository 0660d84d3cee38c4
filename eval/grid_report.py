"""`python -m eval grid`: resolve writers and readers, run the grid (eval/grid.py), write report.json, report.md,
grid.png (reader I and brief overlap vs alpha per writer) and transcript.md (a few briefs side by side).

    python -m eval grid --cqa cqa=models/cqa/adapter.gguf --passage passage=PATH --out eval/results/generate-grid
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

from assistant import atomic, copying, defaults
from assistant.errors import BadInput

from . import copyrule, grid
from . import report as rep
from .cache import ScoreCache
from .pairs import default_briefs_files, files_info, load_briefs
from .readers import Readers, resolve_readers
from .settings import Settings
from .tables import md_table, num, pct, pval
from .variants import parse_adapters, resolve_variants
from .writers import NOTES_TOKENS, EngineGridWriter

TRANSCRIPT_BRIEFS = 3


def writers_from_args(args, model: str | None) -> tuple[list[grid.GridWriter], object]:
    """The grid's writers from --cqa (each with its notes and without) and --passage, and the base variant."""
    cqa = parse_adapters(args.cqa)
    passage = parse_adapters(args.passage)
    variants = resolve_variants(model, cqa + passage)
    by_name = {v.name: v for v in variants}
    out = [grid.GridWriter("base", None)]
    for name, _ in cqa:
        v = by_name[name]
        out += [grid.GridWriter(f"{name}+notes", v.adapter_path, v.adapter_sha256, True),
                grid.GridWriter(f"{name}-notes", v.adapter_path, v.adapter_sha256, False)]
    for name, _ in passage:
        v = by_name[name]
        out.append(grid.GridWriter(name, v.adapter_path, v.adapter_sha256, False))
    return out, variants[0]


def copy_rules(rows: list[dict], readers: list[str], chooser: str, pairs_report: Path | None, writers) -> dict:
    """The copied-span rule measured both ways on these drafts (every reader) and, from a pair report scored with
    both rules, on the pairs; the README's decision applied (`eval.copyrule.decide`)."""
    gen = {r: copyrule.on_generations(rows, r) for r in readers}
    pairs, source = None, None
    if pairs_report and Path(pairs_report).is_file():
        rep_json = json.loads(Path(pairs_report).read_text(encoding="utf-8"))
        tuned_shas = {w.adapter_sha256 for w in writers if w.adapter and w.notes}
        by_sha = {a["sha256"]: a["name"] for a in rep_json.get("adapters", [])}
        tuned = next((by_sha[s] for s in tuned_shas if s in by_sha), None)
        pairs = (rep_json.get("copy_rules") or {}).get(tuned)
        source = str(pairs_report) if pairs else None
    decision = copyrule.decide(gen[chooser], pairs) if pairs else {
        "n": copyrule.BEFORE, "why": "no pair report scored with both rules for the tuned adapter: the 3-word rule stays"}
    return {"generations": gen, "pairs": pairs, "pairs_report": source, "reader": chooser, "decision": decision}


def markdown(result: dict) -> str:
    s, readers = result["summary"], [r["name"] for r in result["readers"]]
    out = ["# Generation grid", "", f"- briefs: {result['n_briefs']} ({', '.join(f['path'] for f in result['briefs_files'])}); "
           f"passage budget {result['sampler']['max_tokens']} tokens; notes budget {result['notes_tokens']}; "
           f"temperature {result['sampler']['temperature']}",
           "- readers (wrote and picked nothing): " + ", ".join(f"{r['name']} ({r['template']})" for r in result["readers"]),
           f"- reference: {grid.REFERENCE}; p: one-sided Wilcoxon vs the reference, paired by brief, Holm over the grid",
           "- time (this run; cached work costs nothing, so \"as measured\" is the drafts' own time when they were "
           "written): " + ", ".join(f"{k} {v:.0f} s" for k, v in result["timing"].items()), ""]
    head = ["setting", "with passage", "words", "brief overlap", "distinct-2", "seq-rep-4", "s/draft"]
    rows = []
    for label, v in s.items():
        row = [label, pct(v["with_passage"]), num(v["words"], ".0f"), pct(v["brief_overlap"]),
               num(v["distinct_2"], ".3f"), num(v["repetition_rate"], ".3f"), num(v["seconds"], ".1f")]
        for r in readers:
            x = v["readers"][r]
            vs = x.get("vs_reference", {})
            row += [num(x["I_uncopied_per_token"]), num(x["I_uncopied_budget"]), num(vs.get("mean")),
                    pval(vs.get("p_holm")), num(vs.get("cohens_d"), "+.2f")]
        rows.append(row)
    for r in readers:
        head += [f"{r}: I uncopied/token", f"{r}: I uncopied/budget", "Δ vs ref", "p (Holm)", "d_z"]
    out += md_table(head, rows)
    c = result["choice"]
    out += ["", "## The rule's choice", "", f"**{c['setting']}**: {c['why']}.", ""]
    out += [f"- {k}: {v}" for k, v in c["reasons"].items()]
    out += _copy_rules_md(result.get("copy_rules")) + _best_of_md(result.get("best_of_vs_random"))
    out += ["", "Drafts side by side: [transcript.md](transcript.md); plot: grid.png."]
    return "\n".join(out) + "\n"


def _copy_rules_md(c: dict | None) -> list[str]:
    if not c:
        return []
    out = ["", "## Copied spans: 2 words or 3?", "",
           "On the drafts (every setting's pick): Spearman ρ of I uncopied/token vs brief overlap (lower: less "
           "rewarded by restating the brief), share of tokens marked copied, mean I uncopied/token.", ""]
    rows = [[r, n, num(g["rho"], "+.3f"), pval(g["p"]), pct(g["copied_share"]), num(g["mean_I_uncopied"])]
            for r, gen in c["generations"].items() for n, g in gen.items()]
    out += md_table(["reader", "words per span", "ρ vs brief overlap", "p", "tokens copied", "I uncopied/token"], rows)
    if c.get("pairs"):
        out += ["", f"On the literary pairs ({c['pairs_report']}):", ""]
        out += md_table(["words per span", "base validation rate", "base mean ΔI", "tuned Δ(ΔI)", "p", "d_z"],
                        [[n, pct(x["base_rate"]), num(x["base_mean"]), num(x.get("tuned_mean")),
                          pval(x.get("tuned_p")), num(x.get("tuned_dz"), "+.2f")] for n, x in c["pairs"].items()])
    out += ["", f"**Decision** (README's rule, `eval.copyrule.decide`, reader {c['reader']}): "
                f"{c['decision']['n']}-word spans. {c['decision']['why']}."]
    return out


def _best_of_md(b: dict | None) -> list[str]:
    if not b:
        return []
    out = ["", "## Best of N against a random pick", "",
           "Random pick: the mean over all N drafts of a brief (what picking at random gives on average). "
           "Per writer and α, means over the briefs.", ""]
    rows = [[k, pct(x["pick"]["brief_overlap"]), pct(x["random"]["brief_overlap"]),
             num(x["pick"]["words"], ".0f"), num(x["random"]["words"], ".0f"), "yes" if x["no_worse"] else "NO"]
            for k, x in b.items()]
    return out + md_table(["writer α N", "overlap: pick", "overlap: random", "words: pick", "words: random",
                           "no worse"], rows)


def transcript(result: dict) -> str:
    rows = result["rows"]
    briefs = list(dict.fromkeys(r["brief"] for r in rows))[:TRANSCRIPT_BRIEFS]
    out = ["# Grid transcripts", ""]
    for b in briefs:
        out += [f"## {b}", ""]
        for r in rows:
            if r["brief"] == b:
                ov = "–" if r["brief_overlap"] is None else f"{100 * r['brief_overlap']:.0f} %"
                out += [f"### {r['writer']} α={r['alpha']:g} N={r['n']} (seed {r['seed']}, overlap {ov})", "",
                        r["text"].strip() or "*(no passage)*", ""]
    return "\n".join(out) + "\n"


def plot(result: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    reader = result["choice_reader"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for w in dict.fromkeys(v["writer"] for v in s.values()):
        pts = sorted((v["alpha"], v) for v in s.values() if v["writer"] == w and v["n"] == 1)
        a.plot([p[0] for p in pts], [p[1]["readers"][reader]["I_uncopied_per_token"] for p in pts], marker="o", label=w)
        b.plot([p[0] for p in pts], [p[1]["brief_overlap"] for p in pts], marker="o", label=w)
    a.set_xlabel("brief guidance α")
    a.set_ylabel(f"I over uncopied tokens, bits/token ({reader})")
    b.set_xlabel("brief guidance α")
    b.set_ylabel("brief overlap (share of word pairs)")
    a.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def run_grid(args, settings: Settings, readers: Readers) -> list[Path]:
    from assistant.engine import Engine
    from assistant.sampler import Sampler

    files = args.briefs or default_briefs_files()
    briefs = load_briefs(files)[: args.limit or None]
    writers, base = writers_from_args(args, settings.model)
    reader_specs, notes = resolve_readers(args.reader, base, settings.template)
    if not reader_specs:
        raise BadInput("no reader: the grid needs at least the base model to read the drafts")
    alphas = tuple(args.alphas) if args.alphas else grid.DEFAULT_ALPHAS
    best_of = tuple(args.best_of) if args.best_of else grid.DEFAULT_BEST_OF
    if 1 not in best_of or any(n < 1 for n in best_of):
        raise BadInput("--best-of must include 1 (the reference) and hold only whole numbers >= 1")
    sampler = Sampler(temperature=args.temperature, max_tokens=args.max_tokens)

    # the writers write as the app does, on the weights it serves (the readers keep the model file: they judge)
    weights = args.weights or defaults.served_weights(settings.model)

    def open_writer(w: grid.GridWriter) -> EngineGridWriter:
        return EngineGridWriter(Engine.load(settings.model, lora_path=w.adapter, n_threads=settings.threads,
                                            weights=weights), settings.template)

    brief_texts = {rec.id: rec.brief().text() for rec in briefs}
    t0 = time.perf_counter()
    res = grid.run(briefs, writers, alphas, best_of, reader_specs, sampler, ScoreCache(settings.cache), open_writer,
                   readers, args.notes_tokens, progress=settings.progress)
    all_settings = grid.settings(writers, alphas, best_of)
    names = [r.name for r in reader_specs]
    chooser = names[1] if len(names) > 1 else names[0]     # the outside reader (Gemma) when installed
    rules = copy_rules(res["rows"], names, chooser, args.pairs_report, writers)
    if rules["decision"]["n"] != copying.N_WORDS:     # the reads follow the score's rule; the decision overrides it
        grid.use_copy_rule(res["rows"], str(rules["decision"]["n"]), sampler.max_tokens)
    summary = grid.summarise(res["rows"], names, all_settings)
    result = {"writers": [w.__dict__ for w in writers], "readers": [r.__dict__ for r in reader_specs], "notes": notes,
              "alphas": list(alphas), "best_of": list(best_of), "sampler": sampler.to_dict(),
              "notes_tokens": args.notes_tokens, "briefs_files": files_info(files), "n_briefs": len(briefs),
              "writer_weights": weights, "engine": grid.ENGINE,
              "summary": summary, "choice_reader": chooser, "copy_rules": rules,
              "best_of_vs_random": grid.best_of_vs_random(res["rows"], res["drafts"], brief_texts),
              "choice": grid.choose(summary, chooser),
              "rows": res["rows"], "timing": {**res["timing"], "total": time.perf_counter() - t0},
              "machine": rep.machine_info(), "created": rep.now(), "command": settings.command}
    out = Path(args.out)
    rep.save_json(out / "report.json", result)
    atomic.write_text(out / "report.md", markdown(result))
    atomic.write_text(out / "transcript.md", transcript(result))
    atomic.write_bytes(out / "grid.png", plot(result))
    return [out / f for f in ("report.json", "report.md", "transcript.md", "grid.png")]


def add_parser(sub, common) -> None:
    g = sub.add_parser("grid", help="writers x guidance x best-of-N on held-out briefs, read by outside readers")
    g.add_argument("--cqa", action="extend", nargs="+", default=[], metavar="NAME=PATH",
                   help="an adapter that reasons first: written with its notes and without")
    g.add_argument("--passage", action="extend", nargs="+", default=[], metavar="NAME=PATH",
                   help="a passage-only adapter (no notes)")
    g.add_argument("--alphas", type=float, nargs="+", default=None, help=f"guidance values (default {grid.DEFAULT_ALPHAS})")
    g.add_argument("--best-of", type=int, nargs="+", default=None, help=f"N values (default {grid.DEFAULT_BEST_OF})")
    g.add_argument("--briefs", action="extend", nargs="+", type=Path, default=[], metavar="FILE")
    g.add_argument("--limit", type=int, default=None, help="only the first N briefs")
    g.add_argument("--reader", action="extend", nargs="+", default=[], metavar="MODEL")
    g.add_argument("--max-tokens", type=int, default=160, help="passage tokens per draft at most")
    g.add_argument("--notes-tokens", type=int, default=NOTES_TOKENS)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--weights", default=None, help="the writers' weights (default: what the app serves here)")
    g.add_argument("--pairs-report", type=Path, default=Path("eval/results/pairs-shipped/report.json"),
                   help="a pair report scored with both copied-span rules (`eval pairs`), for the copy-rule decision")
    common(g, "generate-grid")
    return g
