"""Markdown tables and their cells, for every eval report: numbers, percentages, p-values.

    python -m eval pairs --out eval/out/pairs      # report.md is made of these

A missing value (None, NaN, inf) is shown as "–", never as "nan".

    >>> num(0.12345), num(None), pct(0.5), pval(0.0312), pval(0.00012)
    ('+0.123', '–', '50%', '0.031', '1.2e-04')
    >>> md_table(["variant", "n"], [["base", "40"]])
    ['| variant | n |', '|---|---:|', '| base | 40 |']
"""
from __future__ import annotations

import math

MISSING = "–"


def num(x, fmt: str = "+.3f") -> str:
    """A number in `fmt` (default: signed, 3 decimals, as bits/token are shown)."""
    return MISSING if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def pct(x) -> str:
    """A share as a whole percentage."""
    return MISSING if x is None else f"{100 * x:.0f}%"


def pval(x) -> str:
    """A p-value: 3 decimals, or scientific notation below 0.001."""
    return MISSING if x is None else (f"{x:.3f}" if x >= 0.001 else f"{x:.1e}")


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the rest right-aligned (numbers)."""
    return ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1),
            *("| " + " | ".join(r) + " |" for r in rows)]
