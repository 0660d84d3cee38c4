"""Which copied-span rule gives the sounder I over uncopied tokens: shared runs of 2 words, or of 3?

The rule was fixed in README.md ("Copied spans: 2 words or 3?") before either measurement ran, and is applied here
as code (`decide`). It chose 2-word spans (eval/results/generate-grid), and the score now uses them
(`assistant.copying.N_WORDS`). The rule: keep 3-word spans unless 2-word spans
  (a) make I_uncopied less rewarded by restating the brief: over the grid's drafts, read by the outside reader,
      the Spearman correlation between a draft's I_uncopied per token and its brief overlap falls by at least
      MIN_RHO_DROP, and
  (b) keep the judge's power on the pairs: the tuned adapter's literary Δ(ΔI) over uncopied tokens stays positive
      at Wilcoxon p < 0.05, and the base's literary validation rate over uncopied tokens falls by at most
      MAX_RATE_DROP.
Both rules are reported either way. Every score in the inputs carries `copy_rules` (`ScoredText.copy_rules`):
{"2": {"I_uncopied_per_token", ...}, "3": {...}}. Since every record carries both, a cached score written when the
score used 3-word spans is read under the score's rule of today by `follow`, without scoring again.

    >>> g = {"2": {"rho": 0.10}, "3": {"rho": 0.40}}
    >>> p = {"2": {"tuned_p": 0.01, "tuned_mean": 0.04, "base_rate": 0.50}, "3": {"base_rate": 0.52}}
    >>> decide(g, p)["n"]
    2
    >>> decide(g, {**p, "2": {**p["2"], "tuned_p": 0.2}})["n"]   # the judge loses its signal: keep 3
    3
"""
from __future__ import annotations

from assistant import copying

from . import stats

RULES = ("2", "3")
BEFORE = 3          # the rule's answer without evidence for 2-word spans (the score's rule when it was written)
MIN_RHO_DROP = 0.05
MAX_RATE_DROP = 0.05
SIG = 0.05


def follow(score: dict | None, n: int | None = None) -> dict | None:
    """`score` with I_uncopied, its per-token mean and n_copied under the n-word rule (default: the score's own,
    `assistant.copying.N_WORDS`), taken from its `copy_rules`; a score without them is returned as it is.

    >>> s = {"I": 9.0, "I_uncopied": 8.0, "copy_rules": {"2": {"I_uncopied": 6.0, "I_uncopied_per_token": 0.5,
    ...                                                       "n_copied": 4}, "3": {}}}
    >>> follow(s, 2)["I_uncopied"], follow(s, 2)["n_copied"], s["I_uncopied"]
    (6.0, 4, 8.0)
    """
    if not score or not score.get("copy_rules"):
        return score
    rule = score["copy_rules"][str(copying.N_WORDS if n is None else n)]
    return {**score, **{k: rule[k] for k in ("I_uncopied", "I_uncopied_per_token", "n_copied")}}


def _per_token(score: dict | None, n: str) -> float | None:
    if not score or not score.get("copy_rules"):
        return None
    return score["copy_rules"][n]["I_uncopied_per_token"]


def on_generations(rows: list[dict], reader: str) -> dict:
    """Per rule: Spearman rho (and p) of I_uncopied per token vs brief overlap over the drafts `reader` scored,
    the mean share of tokens marked copied, and the mean I_uncopied per token."""
    from scipy.stats import spearmanr

    out = {}
    for n in RULES:
        pts = [(_per_token(r["scores"].get(reader), n), r["brief_overlap"],
                r["scores"][reader]["copy_rules"][n]["n_copied"] / max(r["scores"][reader]["n_tokens"], 1))
               for r in rows if _per_token(r["scores"].get(reader), n) is not None and r["brief_overlap"] is not None]
        if len(pts) < 3:
            out[n] = {"n_drafts": len(pts), "rho": None, "p": None, "copied_share": None, "mean_I_uncopied": None}
            continue
        rho, p = spearmanr([x for x, _, _ in pts], [y for _, y, _ in pts])
        out[n] = {"n_drafts": len(pts), "rho": float(rho), "p": float(p),
                  "copied_share": stats.mean(c for _, _, c in pts), "mean_I_uncopied": stats.mean(x for x, _, _ in pts)}
    return out


def on_pairs(scores: dict, pairs: list, base: str, tuned: str | None, group: str = "literary") -> dict:
    """Per rule, on `group`'s pairs: the base's validation rate and mean ΔI over uncopied tokens; the tuned
    adapter's Δ(ΔI) (mean, one-sided Wilcoxon p, d_z) against the base. `scores[variant][pair id][high|degraded]`."""
    ps = [p for p in pairs if p.group == group]
    out = {}
    for n in RULES:
        def delta(v):
            return [_per_token(scores[v][p.id]["high"], n) - _per_token(scores[v][p.id]["degraded"], n) for p in ps]
        d0 = delta(base)
        row = {"n_pairs": len(ps), "base_rate": stats.validation_rate(d0), "base_mean": stats.mean(d0)}
        if tuned:
            dd = stats.paired_differences(delta(tuned), d0)
            row.update(tuned_mean=stats.mean(dd), tuned_p=stats.wilcoxon_greater(dd), tuned_dz=stats.cohens_dz(dd))
        out[n] = row
    return out


def has_rules(scores: dict) -> bool:
    """Do all the pair scores carry both rules (scored by this version of the scorer)?"""
    return all(s and s.get("copy_rules") for per in scores.values() for hd in per.values() for s in hd.values())


def decide(gen: dict, pairs: dict) -> dict:
    """The README's rule as code: {"n": 2 or 3, "why": ...}."""
    r2, r3 = gen["2"].get("rho"), gen["3"].get("rho")
    if r2 is None or r3 is None:
        return {"n": BEFORE, "why": "no generation data for both rules: the 3-word rule stays"}
    less_gamed = r3 - r2 >= MIN_RHO_DROP
    p2 = pairs["2"]
    keeps_signal = (p2.get("tuned_p") is not None and p2["tuned_p"] < SIG and (p2.get("tuned_mean") or 0) > 0
                    and (p2.get("base_rate") or 0) >= (pairs["3"].get("base_rate") or 0) - MAX_RATE_DROP)
    if less_gamed and keeps_signal:
        return {"n": 2, "why": f"2-word spans: rho vs brief overlap {r2:+.2f} (3-word {r3:+.2f}) and the judge keeps "
                               f"its signal on the pairs (p {p2['tuned_p']:.2g})"}
    why = []
    if not less_gamed:
        why.append(f"2-word spans do not lower the correlation with brief overlap by {MIN_RHO_DROP} "
                   f"({r2:+.2f} vs {r3:+.2f})")
    if not keeps_signal:
        why.append("2-word spans lose the judge's signal on the pairs")
    return {"n": 3, "why": "the 3-word rule stays: " + "; ".join(why)}
