"""Pair scores -> report.json, report.md (and delta.png via eval.plot).

    python -m eval pairs --pairs eval/data/pairs.jsonl --adapter epoch5=models/cqa/adapter.gguf --out eval/out/pairs

Numbers are per-token means in bits/token. Every statistic is given twice: over all
tokens, and over the tokens not copied from the context (suffix `_uncopied`), because
restating the brief earns I cheaply (docs/design.md §5).

report.json:
    {"variants": [names; the first is the base],
     "groups": {group: {"n", "validation_rate": {variant: x}, "mean_delta_I": {variant: x},
                        "validation_rate_uncopied", "mean_delta_I_uncopied", "mean_I",
                        "delta_delta": {adapter: {"n", "mean", "wilcoxon_p", "cohens_d",
                                                  "mean_uncopied", "wilcoxon_p_uncopied", "cohens_d_uncopied"}},
                        "axes": {axis: {...the same keys, without "axes"...}}}},
     "pairs": [{"id", "group", "axis", "source", "I": {variant: {"high", "degraded"}}, "I_uncopied": {...},
                "delta_I": {variant: x}, "delta_I_uncopied": {variant: x}, "n_tokens", "n_copied"}],
     "template", "model", "adapters", "pairs_files", "machine", "timing", "created", "command"}
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

from assistant import atomic

from . import stats
from .pairs import AXES, GROUPS, Pair
from .tables import md_table, num, pct, pval

KINDS = (("", "I_per_token"), ("_uncopied", "I_uncopied_per_token"))  # (key suffix, Score field)


def pair_rows(pairs: list[Pair], variants: list[str], scores: dict) -> list[dict]:
    """One row per pair: I of high and degraded and ΔI, per variant, both kinds."""
    rows = []
    for p in pairs:
        row = {"id": p.id, "group": p.group, "axis": p.axis, "source": p.source}
        for suffix, fld in KINDS:
            row["I" + suffix] = {v: {k: scores[v][p.id][k][fld] for k in ("high", "degraded")} for v in variants}
            row["delta_I" + suffix] = {v: row["I" + suffix][v]["high"] - row["I" + suffix][v]["degraded"]
                                       for v in variants}
        base = scores[variants[0]][p.id]
        row["n_tokens"] = {k: base[k]["n_tokens"] for k in ("high", "degraded")}
        row["n_copied"] = {k: base[k]["n_copied"] for k in ("high", "degraded")}
        rows.append(row)
    return rows


def summarise(rows: list[dict], variants: list[str]) -> dict:
    """n, validation rate, mean ΔI per variant; Δ(ΔI) statistics per adapter against the base."""
    out: dict = {"n": len(rows)}
    for suffix, _ in KINDS:
        d = {v: [r["delta_I" + suffix][v] for r in rows] for v in variants}
        out["validation_rate" + suffix] = {v: stats.validation_rate(d[v]) for v in variants}
        out["mean_delta_I" + suffix] = {v: stats.mean(d[v]) for v in variants}
        out["mean_I" + suffix] = {v: {k: stats.mean(r["I" + suffix][v][k] for r in rows)
                                      for k in ("high", "degraded")} for v in variants}
    base = variants[0]
    out["delta_delta"] = {}
    for a in variants[1:]:
        dd = {}
        for suffix, _ in KINDS:
            res = stats.delta_delta([r["delta_I" + suffix][a] for r in rows],
                                    [r["delta_I" + suffix][base] for r in rows])
            dd["n"] = res.pop("n")
            dd.update({k + suffix: x for k, x in res.items()})
        out["delta_delta"][a] = dd
    return out


def build(pairs: list[Pair], variants: list[str], scores: dict, meta: dict | None = None) -> dict:
    """The whole report as plain JSON-able data (see the module docstring for the shape)."""
    rows = pair_rows(pairs, variants, scores)
    present = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    groups = {}
    for g in present:
        grows = [r for r in rows if r["group"] == g]
        groups[g] = summarise(grows, variants)
        groups[g]["axes"] = {a: summarise([r for r in grows if r["axis"] == a], variants)
                             for a in AXES if any(r["axis"] == a for r in grows)}
    return {"variants": list(variants), "groups": groups, "pairs": rows, **(meta or {})}


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    try:
        from importlib.metadata import version
        info["llama_cpp_python"] = version("llama-cpp-python")
    except Exception:  # noqa: BLE001 - not installed is fine here
        info["llama_cpp_python"] = None
    return info


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- writing ---------------------------------------------------------------------------------
def _clean(x):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def save_json(path: Path, data: dict) -> Path:
    """A report as JSON (NaN and inf as null, one-space indent, UTF-8 as it is), written atomically."""
    return atomic.write_json(path, _clean(data), indent=1, ensure_ascii=False)


def _group_tables(s: dict, variants: list[str], adapters: list[str]) -> list[str]:
    lines = md_table(["variant", "n", "validation rate", "mean ΔI", "validation rate (uncopied)",
                      "mean ΔI (uncopied)"],
                     [[v, str(s["n"]), pct(s["validation_rate"][v]), num(s["mean_delta_I"][v]),
                       pct(s["validation_rate_uncopied"][v]), num(s["mean_delta_I_uncopied"][v])] for v in variants])
    if adapters:
        dd = [(a, s["delta_delta"][a]) for a in adapters]
        lines += [""] + md_table(
            ["adapter vs base", "n", "mean Δ(ΔI)", "Wilcoxon p (greater)", "Cohen's d_z", "mean Δ(ΔI) (uncopied)",
             "p (uncopied)", "d_z (uncopied)"],
            [[a, str(d["n"]), num(d["mean"]), pval(d["wilcoxon_p"]), num(d["cohens_d"], "+.2f"), num(d["mean_uncopied"]),
              pval(d["wilcoxon_p_uncopied"]), num(d["cohens_d_uncopied"], "+.2f")] for a, d in dd])
    return lines


def markdown(report: dict) -> str:
    variants = report["variants"]
    adapters = variants[1:]
    m = report.get("model", {})
    out = ["# Pair evaluation: ΔI = I(high) − I(degraded), base vs CQA", ""]
    out += [f"- model: `{m.get('name', '?')}` ({Path(m.get('path', '?')).name}, "
            f"sha256 `{m.get('sha256', '?')[:16]}…`)",
            f"- template: **{report.get('template', '?')}** (the prompt format changes the numbers)"]
    for a in report.get("adapters", []):
        out.append(f"- adapter `{a['name']}`: {a['path']} (sha256 `{(a['sha256'] or '?')[:16]}…`)")
    for f in report.get("pairs_files", []):
        out.append(f"- pairs: {f['path']} ({f['lines']} pairs, sha256 `{f['sha256'][:16]}…`)")
    mach = report.get("machine", {})
    if mach:
        out.append(f"- machine: {mach.get('platform')}, {mach.get('cpu_count')} CPUs, "
                   f"llama-cpp-python {mach.get('llama_cpp_python')}; created {report.get('created', '?')}")
    for v, t in report.get("timing", {}).items():
        per = t.get("seconds_per_scored_pair")
        out.append(f"- time `{v}`: {t['seconds']:.1f} s, CPU {t['cpu_seconds']:.1f} s ({t['texts_scored']} texts "
                   f"scored, {t['texts_cached']} from cache" + (f"; {per:.1f} s per scored pair" if per else "") + ")")
    out += ["", "Bits/token. Validation rate: share of pairs with ΔI > 0. Δ(ΔI) = ΔI(adapter) − ΔI(base) per "
            "pair; one-sided Wilcoxon signed-rank test (the adapter raises ΔI) and Cohen's d_z = mean/sd "
            "of the paired differences. *Uncopied*: I over the tokens not copied from the context "
            f"({report.get('copy_rule_words', 3)}-word spans: shared runs of that many words or more; reports made "
            "before the copy-rule decision used 3).", "", "![ΔI per pair](delta.png)", ""]
    for g, s in report["groups"].items():
        out += [f"## {g}", ""] + _group_tables(s, variants, adapters) + [""]
        out += [f"### {g}, by axis", "",
                "| axis | n | " + " | ".join(f"{v}: val. rate / mean ΔI / mean ΔI uncop." for v in variants)
                + "".join(f" | Δ(ΔI) {a}: mean / p" for a in adapters) + " |",
                "|---|---:|" + "---:|" * (len(variants) + len(adapters))]
        for axis, a in s["axes"].items():
            cells = [f"{pct(a['validation_rate'][v])} / {num(a['mean_delta_I'][v])} / "
                     f"{num(a['mean_delta_I_uncopied'][v])}" for v in variants]
            cells += [f"{num(a['delta_delta'][ad]['mean'])} / {pval(a['delta_delta'][ad]['wilcoxon_p'])}"
                      for ad in adapters]
            out.append(f"| {axis} | {a['n']} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Pairs", "", "| id | group | axis | tokens (high/degr.) | "
            + " | ".join(f"ΔI {v} (uncop.)" for v in variants) + " |",
            "|---|---|---|---:|" + "---:|" * len(variants)]
    for r in report["pairs"]:
        out.append(f"| {r['id']} | {r['group']} | {r['axis']} | {r['n_tokens']['high']}/{r['n_tokens']['degraded']} | "
                   + " | ".join(f"{num(r['delta_I'][v])} ({num(r['delta_I_uncopied'][v])})" for v in variants) + " |")
    return "\n".join(out) + "\n"


def write_all(report: dict, out_dir: Path) -> list[Path]:
    """report.json, report.md and delta.png in out_dir; returns the paths."""
    from .plot import plot_delta

    out_dir = Path(out_dir)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "delta.png"]
    save_json(paths[0], report)
    atomic.write_text(paths[1], markdown(report))
    atomic.write_bytes(paths[2], plot_delta(report))
    return paths
