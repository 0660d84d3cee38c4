"""delta.png: ΔI per pair for each variant, one row per group, all tokens and uncopied.

    python -m eval pairs --pairs eval/data/pairs.jsonl --out eval/out/pairs   # writes eval/out/pairs/delta.png

Each pair is a line across the variants (base, then each adapter), so the slope of a
line is that pair's Δ(ΔI); points above the zero line are validations (ΔI > 0).
"""
from __future__ import annotations

import io

import numpy as np

from .pairs import AXES

AXIS_COLOURS = {"cliche": "tab:blue", "audience": "tab:orange", "reality": "tab:green", "craft": "tab:purple"}


def _label(g: dict, v: str, suffix: str, base: str) -> str:
    rate = g["validation_rate" + suffix][v]
    text = f"{v}\nval. {100 * rate:.0f}%" if rate is not None else v
    if v != base:
        d = g["delta_delta"][v]
        mean, p = d["mean" + suffix], d["wilcoxon_p" + suffix]
        text += f"\nΔ(ΔI) {mean:+.3f}" if mean is not None else ""
        text += f"\np={p:.3f}" if p is not None else ""
    return text


def plot_delta(report: dict) -> bytes:
    """PNG bytes of the figure (matplotlib, Agg backend: no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["variants"]
    groups = list(report["groups"])
    rows_by_group = {g: [r for r in report["pairs"] if r["group"] == g] for g in groups}
    fig, axes = plt.subplots(max(1, len(groups)), 2, figsize=(6 + 1.6 * len(variants), 3.6 * max(1, len(groups))),
                             squeeze=False)
    rng = np.random.default_rng(0)  # fixed jitter so re-runs give the same picture
    for gi, g in enumerate(groups):
        rows = rows_by_group[g]
        jitter = rng.uniform(-0.08, 0.08, size=len(rows))
        for ci, (suffix, title) in enumerate((("", "all tokens"), ("_uncopied", "uncopied tokens"))):
            ax = axes[gi][ci]
            x = np.arange(len(variants), dtype=float)
            for r, j in zip(rows, jitter):
                y = [r["delta_I" + suffix][v] for v in variants]
                colour = AXIS_COLOURS.get(r["axis"], "grey")
                if len(variants) > 1:
                    ax.plot(x + j, y, color=colour, alpha=0.35, linewidth=0.8)
                ax.scatter(x + j, y, color=colour, s=14, zorder=3)
            means = [report["groups"][g]["mean_delta_I" + suffix][v] for v in variants]
            ax.plot(x, means, color="black", marker="_", markersize=28, linestyle="-" if len(x) > 1 else "none",
                    linewidth=2, zorder=4, label="mean")
            ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_xticks(x)
            ax.set_xticklabels([_label(report["groups"][g], v, suffix, variants[0]) for v in variants], fontsize=8)
            ax.set_xlim(-0.5, len(variants) - 0.5)
            ax.set_ylabel("ΔI = I(high) − I(degraded), bits/token", fontsize=8)
            ax.set_title(f"{g} (n={len(rows)}): {title}", fontsize=9)
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=a) for a, c in AXIS_COLOURS.items()
               if any(r["axis"] == a for r in report["pairs"]) and a in AXES]
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=8, title="axis", title_fontsize=8)
    fig.suptitle(f"ΔI per pair, template {report.get('template', '?')}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 0.96))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
