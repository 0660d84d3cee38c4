"""Which epoch ships: the rule fixed in README.md before any tuned result was seen.

    python -m eval choose models/cqa/eval/report.json

Rule: the adapter with the largest mean literary Δ(ΔI) over all tokens; adapters within
TIE_BITS of the best count as tied and the earliest epoch among them wins; when no adapter
has a positive mean, none ships. Adapters are named `epoch-N` (N = the training epoch).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.errors import BadInput

TIE_BITS = 0.001     # bits/token: differences this small are noise on 40 pairs
GROUP = "literary"
_EPOCH = re.compile(r"^epoch-(\d+)$")


@dataclass(frozen=True)
class Choice:
    epoch: int | None          # None: no epoch ships
    reason: str
    means: dict[int, float]    # epoch -> mean literary Δ(ΔI), bits/token


def epoch_of(variant: str) -> int:
    m = _EPOCH.match(variant)
    if not m:
        raise BadInput(f"adapter {variant!r} is not named epoch-N: the rule needs each adapter's epoch")
    return int(m.group(1))


def choose(report: dict) -> Choice:
    """Apply the rule to a pair report (report.json of `python -m eval pairs`); BadInput when it cannot."""
    try:
        dd = report["groups"][GROUP]["delta_delta"]
    except KeyError as e:
        raise BadInput(f"the report has no {GROUP} Δ(ΔI): run `python -m eval pairs` with the epochs' adapters") from e
    if not dd:
        raise BadInput("the report compares no adapter with the base")
    means = {epoch_of(v): float(d["mean"]) for v, d in dd.items()}
    best = max(means.values())
    if best <= 0:
        return Choice(None, f"no epoch raises literary ΔI (best mean Δ(ΔI) {best:+.4f} bits/token): none ships",
                      means)
    tied = sorted(e for e, m in means.items() if best - m <= TIE_BITS)
    epoch = tied[0]
    why = f"epoch {epoch}: mean literary Δ(ΔI) {means[epoch]:+.4f} bits/token"
    if len(tied) > 1:
        why += f" (within {TIE_BITS} of the best {best:+.4f}, tied with epochs {tied[1:]}: the earliest wins)"
    return Choice(epoch, why, means)
