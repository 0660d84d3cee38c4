"""Preference data from scored drafts: the guard filter, chosen and rejected drafts, and the per-round watch.
Pure functions on plain dicts.

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --stage pairs

A draft is {"brief", "seed", "text", "reward", ...}: `reward` is the judge's ranking score of the passage,
I over uncopied tokens per token of the budget (`assistant.ranking.rank_score`, bits), None without a passage.

Guards are hard filters, never rewards (docs/design.md §3: restating the brief raises I under every
reader). Against the reference setting of the generation grid (base, α 0, N 1: its mean brief overlap,
seq-rep-4 and distinct-2 in eval/results/generate-grid-lockstep/report.json) a passage fails when its brief overlap
is above the reference's + 0.03, its seq-rep-4 above + 0.02, its distinct-2 below - 0.03 (the grid's
GUARDS, `finetune.draft_stats`), or its length is below 0.9x the median length of its brief's drafts.
A failing passage is never chosen.

Chosen = the passing draft with the highest reward. Rejected = a clearly worse draft of the same brief:
drafts are ordered as `assistant.ranking.rank` orders them (passing before failing, then by reward), and
the last one is taken if it fails a guard or its reward is at least `margin` below the chosen's. Worked
example (tests/test_prefer_pairs.py asserts it), margin 0.05:

    >>> ds = [{"seed": 0, "reward": 0.40, "fails": []}, {"seed": 1, "reward": 0.38, "fails": []},
    ...       {"seed": 2, "reward": 0.90, "fails": ["brief_overlap"]}]
    >>> p = pick_pair(ds, 0.05); p["chosen"]["seed"], p["rejected"]["seed"], p["why"]
    (0, 2, 'fails brief_overlap')
    >>> pick_pair(ds[:2], 0.05)["why"]      # 0.38 is within the margin of 0.40: no clear preference
    'no draft clearly worse (margin 0.05)'
"""
from __future__ import annotations

import statistics

from .draft_stats import GUARDS, guard_ok, text_metrics
from .errors import ConfigError

PASSAGE_GUARDS = ("brief_overlap", "repetition_rate", "distinct_2")   # relative to the grid's reference
LENGTH_GUARD = "words"                                                # relative to the brief's median
WATCHED = ("reward", "words", "brief_overlap", "repetition_rate", "distinct_2")


def guard_reference(grid_report: dict, label: str) -> dict:
    """The reference setting's mean brief overlap, seq-rep-4 and distinct-2 from a grid report."""
    s = (grid_report.get("summary") or {}).get(label)
    if s is None:
        raise ConfigError(f"the grid report has no setting {label!r} (guard_reference): known "
                          f"{sorted((grid_report.get('summary') or {}))}")
    return {k: s[k] for k in PASSAGE_GUARDS}


def check_drafts(drafts: list[dict], brief_text: str, reference: dict) -> list[dict]:
    """The drafts of one brief with their measures and `fails` (the guards they break), as new dicts."""
    out = [{**d, **text_metrics(d["text"], brief_text)} for d in drafts]
    median = statistics.median([d["words"] for d in out]) if out else 0
    for d in out:
        fails = [k for k in PASSAGE_GUARDS if not guard_ok(d[k], reference[k], GUARDS[k])]
        if not guard_ok(d["words"], median, GUARDS[LENGTH_GUARD]):
            fails.append(LENGTH_GUARD)
        if d.get("reward") is None:
            fails.append("no passage")
        d["median_words"], d["fails"] = median, fails
    return out


def order(drafts: list[dict]) -> list[dict]:
    """Passing drafts before failing ones, each by reward (highest first), then by seed."""
    return sorted(drafts, key=lambda d: (bool(d["fails"]), -(d["reward"] if d["reward"] is not None else -1e9),
                                         d["seed"]))


def pick_pair(drafts: list[dict], margin: float) -> dict:
    """{"chosen", "rejected", "why"} for one brief's checked drafts; chosen or rejected None when there is none."""
    ranked = order(drafts)
    if not ranked or ranked[0]["fails"]:
        return {"chosen": None, "rejected": None, "why": "no draft passes the guards"}
    chosen, last = ranked[0], ranked[-1]
    if last is chosen:
        return {"chosen": chosen, "rejected": None, "why": "one draft only"}
    if last["fails"]:
        return {"chosen": chosen, "rejected": last, "why": "fails " + ", ".join(last["fails"])}
    if last["reward"] <= chosen["reward"] - margin:
        return {"chosen": chosen, "rejected": last, "why": f"reward lower by {chosen['reward'] - last['reward']:.3f}"}
    return {"chosen": chosen, "rejected": None, "why": f"no draft clearly worse (margin {margin:g})"}


def build(drafts_by_brief: dict[str, list[dict]], brief_texts: dict[str, str], reference: dict,
          margin: float) -> dict:
    """{"checked": {brief: drafts}, "picks": {brief: pick}, "pairs": [...], "chosen": [...], "counts": {...}}."""
    checked, picks = {}, {}
    for bid, ds in drafts_by_brief.items():
        checked[bid] = check_drafts(ds, brief_texts[bid], reference)
        picks[bid] = pick_pair(checked[bid], margin)
    pairs = [{"brief": b, "chosen": p["chosen"], "rejected": p["rejected"], "why": p["why"]}
             for b, p in picks.items() if p["rejected"] is not None]
    chosen = [{"brief": b, "chosen": p["chosen"]} for b, p in picks.items() if p["chosen"] is not None]
    all_drafts = [d for ds in checked.values() for d in ds]
    fails = {k: sum(k in d["fails"] for d in all_drafts) for k in (*PASSAGE_GUARDS, LENGTH_GUARD, "no passage")}
    counts = {"briefs": len(picks), "drafts": len(all_drafts), "drafts_passing": sum(not d["fails"] for d in all_drafts),
              "fails_by_guard": fails, "briefs_with_chosen": len(chosen), "pairs": len(pairs),
              "pairs_rejected_by_guard": sum(p["why"].startswith("fails") for p in pairs),
              "pairs_rejected_by_margin": sum(p["why"].startswith("reward") for p in pairs)}
    return {"checked": checked, "picks": picks, "pairs": pairs, "chosen": chosen, "counts": counts}


def watch(checked: dict[str, list[dict]], picks: dict[str, dict] | None = None) -> dict:
    """One round's reward-hacking watch: mean reward and guard measures over every draft, over the passing
    ones and over the chosen ones (the training targets), with the share passing."""
    all_drafts = [d for ds in checked.values() for d in ds]
    groups = {"all": all_drafts, "passing": [d for d in all_drafts if not d["fails"]]}
    if picks is not None:
        groups["chosen"] = [p["chosen"] for p in picks.values() if p["chosen"] is not None]
    out = {"n_drafts": len(all_drafts), "share_passing": len(groups["passing"]) / max(len(all_drafts), 1)}
    for name, ds in groups.items():
        out[name] = {k: _mean(d.get(k) for d in ds) for k in WATCHED}
        out[name]["n"] = len(ds)
    return out


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None
