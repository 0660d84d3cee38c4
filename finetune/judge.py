"""Which model judges the drafts of `python -m finetune prefer`: the rule, written down before it was applied.

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --stage judge    # prints the choice

The rule (fixed in code and README before the report was read for it): from a pair report of
`python -m eval pairs` (default eval/results/pairs-shipped/report.json: base, CQA, CQA-passage), take the
adapter with the largest mean literary Δ(ΔI) over the tokens *not copied* from the context (the reward
is I over uncopied tokens, so the judge is chosen on that quantity), among adapters whose one-sided
Wilcoxon p (uncopied) is below ALPHA and whose mean is positive. Adapters within TIE_BITS of the best
are tied; a tie goes to the more domain-specific judge, the one with the smaller factual Δ(ΔI)
(uncopied), then to the earlier in the report. No adapter qualifies: the base model judges.

    >>> dd = {"a": {"mean_uncopied": 0.050, "wilcoxon_p_uncopied": 0.001},
    ...       "b": {"mean_uncopied": 0.0505, "wilcoxon_p_uncopied": 0.01},
    ...       "c": {"mean_uncopied": 0.090, "wilcoxon_p_uncopied": 0.20}}
    >>> rep = {"groups": {"literary": {"delta_delta": dd}, "factual": {"delta_delta": {
    ...        "a": {"mean_uncopied": 0.01}, "b": {"mean_uncopied": 0.04}, "c": {"mean_uncopied": 0.0}}}},
    ...        "adapters": [{"name": n, "path": f"{n}.gguf", "sha256": n} for n in "abc"]}
    >>> choose_judge(rep).name        # c is not significant; a and b tie, a is more specific
    'a'
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

ALPHA = 0.05          # one-sided Wilcoxon p a judge needs on the literary pairs
TIE_BITS = 0.001      # bits/token: the tie band of `python -m eval choose`
METRIC = "mean_uncopied"


@dataclass(frozen=True)
class Judge:
    name: str                   # the adapter's name in the report ("base" when none qualifies)
    adapter: str | None         # its path (None: the base model)
    adapter_sha256: str
    why: str
    means: dict                 # adapter -> (literary mean Δ(ΔI) uncopied, its p)

    def to_json(self) -> dict:
        return {"name": self.name, "adapter": self.adapter, "adapter_sha256": self.adapter_sha256, "why": self.why,
                "literary_delta_delta_uncopied": self.means, "rule": __doc__.split("\n\n")[2].replace("\n", " ")}


def choose_judge(report: dict) -> Judge:
    try:
        lit = report["groups"]["literary"]["delta_delta"]
        fac = report["groups"].get("factual", {}).get("delta_delta", {})
        adapters = {a["name"]: a for a in report["adapters"]}
    except (KeyError, TypeError) as e:
        raise ConfigError(f"the judge report has no literary Δ(ΔI) or adapter list ({e}): point judge_report at "
                          "report.json of `python -m eval pairs --adapter ...`") from e
    means = {n: (d.get(METRIC), d.get("wilcoxon_p_uncopied")) for n, d in lit.items()}
    ok = [n for n, (m, p) in means.items() if m is not None and p is not None and m > 0 and p < ALPHA]
    if not ok:
        return Judge("base", None, "", f"no adapter has a positive literary Δ(ΔI) over uncopied tokens at p < {ALPHA}:"
                     " the base model judges", means)
    best = max(means[n][0] for n in ok)
    order = list(lit)
    tied = [n for n in ok if best - means[n][0] <= TIE_BITS]
    name = min(tied, key=lambda n: (fac.get(n, {}).get(METRIC, 0.0), order.index(n)))
    why = (f"largest literary Δ(ΔI) over uncopied tokens at p < {ALPHA}: {means[name][0]:+.4f} bits/token "
           f"(p {means[name][1]:.2g})" + (f"; tied within {TIE_BITS} with {sorted(set(tied) - {name})}, the smaller "
                                          "factual Δ(ΔI) wins" if len(tied) > 1 else ""))
    a = adapters.get(name)
    if a is None:
        raise ConfigError(f"the judge report names no file for adapter {name!r}")
    return Judge(name, a["path"], a.get("sha256", ""), why, means)
