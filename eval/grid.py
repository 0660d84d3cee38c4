"""The generation grid: which way of writing gives better drafts, judged by readers that did not pick them.

    python -m eval grid --cqa cqa=models/cqa/adapter.gguf --passage passage=models/cqa-passage/adapter.gguf \\
        --out eval/results/generate-grid          # ~2 h on 2 idle cores; re-run to resume from the cache

Settings: writer (the base; CQA reasoning first; CQA writing the passage at once; the passage-only adapter)
x brief guidance alpha x best-of-N, on the held-out briefs, the same seeds for every setting (seed 0 for
N=1; seeds 0..N-1 for best of N, written side by side as the app writes them (writer.best_of) and picked
by the writer's own live score, `assistant.ranking`), passages cut
to the same token budget. Each picked passage is read by fixed readers that wrote and picked nothing (the
base model with no adapter; Gemma 3 270M with the plain template, when installed): I and I over uncopied
tokens, per token and as a total over the budget; plus brief overlap, length, distinct-2, seq-rep-4, the
share of drafts with a passage, seconds per draft (a best-of-N setting pays for its N drafts). Paired by
brief against the reference (base, alpha 0, N 1): mean difference, one-sided Wilcoxon p, Holm-adjusted
over the grid, Cohen's d_z. `choose` applies the README's rule, written before the grid ran.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Callable

from assistant import ranking
from finetune.draft_stats import GUARDS, guard_ok as _guard_ok, text_metrics  # noqa: F401 - one rule, shared

from . import copyrule, stats
from .cache import Lazy, ScoreCache
from .readers import Readers, ReaderSpec, read_drafts

REFERENCE = ("base", 0.0, 1)
DEFAULT_ALPHAS = (0.0, 0.5)   # the 0.25 was cut first, then 1.0, to fit ~2 h (briefs are never cut)
DEFAULT_BEST_OF = (1, 4)
RULE_METRIC = "I_uncopied_per_token"
# The rule's guards (README, "How the app's defaults are chosen"), relative to the reference setting: GUARDS,
# from finetune/draft_stats.py, where the preference data (python -m finetune prefer) reads them too.
TIE = 0.01            # bits/token: differences this small go to the cheaper setting
ENGINE = "lockstep-1"  # how drafts are written (cache keys): best of N side by side, the lazy unconditional reader
ALPHA_SIG = 0.05      # Holm-adjusted one-sided p a setting needs to count as better than the reference


@dataclass(frozen=True)
class GridWriter:
    """One way of writing: a model variant and whether a CQA model reasons first."""
    name: str                  # e.g. "base", "cqa+notes", "cqa-notes", "passage"
    adapter: str | None        # path of the adapter (None: the base)
    adapter_sha256: str = ""
    notes: bool = True         # False: the passage at once, under the "Passage:" header


@dataclass(frozen=True)
class Setting:
    writer: str
    alpha: float
    n: int

    @property
    def label(self) -> str:
        return f"{self.writer} α={self.alpha:g} N={self.n}"

    def key(self) -> tuple:
        return (self.writer, self.alpha, self.n)


def settings(writers: list[GridWriter], alphas, best_of) -> list[Setting]:
    return [Setting(w.name, float(a), int(n)) for w in writers for a in alphas for n in best_of]


def pick(drafts: list[dict], n: int) -> dict:
    """The draft a best-of-n setting shows: seed 0 alone for n=1, else the best of seeds 0..n-1 (written side by
    side, one batch) by the writer's own score (`own_score`: the summary of its live score, None without a
    passage), under the score's copy rule. Its cost: the draft's seconds, or the whole batch's."""
    pool = sorted(drafts, key=lambda d: d["seed"])[:n]
    order = ranking.rank([copyrule.follow(d.get("own_score")) for d in pool], pool[0]["budget"])
    chosen = dict(pool[order[0]])
    chosen["seconds_setting"] = pool[0]["seconds"] if n > 1 else sum(d["seconds"] for d in pool)
    return chosen


def use_copy_rule(rows: list[dict], n: str, budget: int) -> None:
    """Make every reader score's I_uncopied follow the n-word copied-span rule (stored in `copy_rules`), in place."""
    for r in rows:
        for name, sc in r["scores"].items():
            if sc and sc.get("copy_rules"):
                sc.update(copyrule.follow(sc, int(n)))
                sc["I_uncopied_budget"] = sc["I_uncopied"] / budget


def best_of_vs_random(rows: list[dict], drafts: list[dict], brief_texts: dict) -> dict:
    """Per (writer, alpha, N>1): the pick's mean brief overlap and length against a random pick's (the mean over
    all N drafts of each brief). `no_worse`: overlap at most the random pick's + 0.01 and length at least 0.95x."""
    out = {}
    for key in sorted({(r["writer"], r["alpha"], r["n"]) for r in rows if r["n"] > 1}):
        w, a, n = key
        picks = [r for r in rows if (r["writer"], r["alpha"], r["n"]) == key]
        pool = [text_metrics(d["text"], brief_texts[d["brief"]]) for d in drafts
                if d["writer"] == w and d["alpha"] == a and d.get("n", n) == n and d["seed"] < n]
        pick_m = {k: stats.mean(r[k] for r in picks if r[k] is not None) for k in ("brief_overlap", "words")}
        rand_m = {k: stats.mean(m[k] for m in pool if m[k] is not None) for k in ("brief_overlap", "words")}
        ok = (pick_m["brief_overlap"] is not None and rand_m["brief_overlap"] is not None
              and pick_m["brief_overlap"] <= rand_m["brief_overlap"] + 0.01 and pick_m["words"] >= 0.95 * rand_m["words"])
        out[f"{w} α={a:g} N={n}"] = {"pick": pick_m, "random": rand_m, "no_worse": bool(ok)}
    return out


def summarise(rows: list[dict], readers: list[str], all_settings: list[Setting]) -> dict:
    """rows: one per (setting, brief): metrics + reader scores. Per setting: means; vs the reference: paired
    differences of every reader's RULE_METRIC with Wilcoxon p, Holm-adjusted over the grid, and d_z."""
    out = {}
    ref_rows = {r["brief"]: r for r in rows if (r["writer"], r["alpha"], r["n"]) == REFERENCE}
    for s in all_settings:
        rs = [r for r in rows if (r["writer"], r["alpha"], r["n"]) == s.key()]
        m = {k: stats.mean(r[k] for r in rs if r[k] is not None) for k in
             ("words", "distinct_2", "repetition_rate", "brief_overlap", "seconds")}
        m["with_passage"] = stats.mean(r["with_passage"] for r in rs)
        m["n_briefs"] = len(rs)
        m["readers"] = {}
        for name in readers:
            sc = [r["scores"].get(name) for r in rs]
            got = [x for x in sc if x]
            m["readers"][name] = {k: stats.mean(x[k] for x in got) for k in
                                  ("I_per_token", "I_uncopied_per_token", "I_uncopied_budget")}
            if s.key() != REFERENCE:
                both = [(r["scores"][name][RULE_METRIC], ref_rows[r["brief"]]["scores"][name][RULE_METRIC])
                        for r in rs if r["scores"].get(name) and r["brief"] in ref_rows
                        and ref_rows[r["brief"]]["scores"].get(name)]
                diffs = [a - b for a, b in both]
                m["readers"][name]["vs_reference"] = {"n": len(diffs), "mean": stats.mean(diffs),
                                                       "wilcoxon_p": stats.wilcoxon_greater(diffs),
                                                       "cohens_d": stats.cohens_dz(diffs)}
        out[s.label] = {"writer": s.writer, "alpha": s.alpha, "n": s.n, **m}
    for name in readers:
        holm(out, name)
    return out


def holm(summary: dict, reader: str) -> None:
    """Holm's step-down adjustment of every setting's p (vs the reference) under one reader, in place."""
    ps = [(v["readers"][reader]["vs_reference"]["wilcoxon_p"], k) for k, v in summary.items()
          if "vs_reference" in v["readers"].get(reader, {})
          and v["readers"][reader]["vs_reference"]["wilcoxon_p"] is not None]
    ps.sort()
    m, running = len(ps), 0.0
    for i, (p, k) in enumerate(ps):
        running = max(running, min(1.0, (m - i) * p))
        summary[k]["readers"][reader]["vs_reference"]["p_holm"] = running


def choose(summary: dict, reader: str) -> dict:
    """The README's rule, as code: among settings within every guard of GUARDS (relative to the reference),
    and better than the reference at Holm-adjusted p < ALPHA_SIG under `reader`, the highest mean RULE_METRIC;
    settings within TIE of the best go to the cheapest (seconds per draft). None qualifying: the reference.

    >>> ref = {"writer": "base", "alpha": 0.0, "n": 1, "brief_overlap": 0.07, "words": 120, "repetition_rate": 0.0,
    ...        "distinct_2": 0.98, "seconds": 3.0, "readers": {"g": {"I_uncopied_per_token": 0.25}}}
    >>> parrot = {**ref, "alpha": 2.0, "brief_overlap": 0.47, "readers": {"g": {"I_uncopied_per_token": 1.26,
    ...           "vs_reference": {"p_holm": 0.001}}}}
    >>> good = {**ref, "alpha": 0.5, "brief_overlap": 0.09, "readers": {"g": {"I_uncopied_per_token": 0.40,
    ...         "vs_reference": {"p_holm": 0.01}}}}
    >>> choose({"base α=0 N=1": ref, "base α=2 N=1": parrot, "base α=0.5 N=1": good}, "g")["setting"]
    'base α=0.5 N=1'
    """
    ref = next(v for v in summary.values() if (v["writer"], v["alpha"], v["n"]) == REFERENCE)
    ok, reasons = [], {}
    for label, v in summary.items():
        if v is ref:
            continue
        failed = [k for k, rule in GUARDS.items() if not _guard_ok(v.get(k), ref.get(k), rule)]
        r = v["readers"].get(reader, {})
        p = r.get("vs_reference", {}).get("p_holm")
        if failed:
            reasons[label] = "fails the guard(s) " + ", ".join(failed)
        elif p is None or p >= ALPHA_SIG or r.get(RULE_METRIC) is None:
            reasons[label] = f"not better than the reference (Holm p {p})"
        else:
            ok.append((label, v))
    if not ok:
        return {"setting": next(k for k, v in summary.items() if v is ref), "changed": False, "reasons": reasons,
                "why": "no setting beats the reference within the guards: the defaults stay where they are"}
    best = max(v["readers"][reader][RULE_METRIC] for _, v in ok)
    close = [(label, v) for label, v in ok if best - v["readers"][reader][RULE_METRIC] <= TIE]
    label, v = min(close, key=lambda lv: (lv[1]["seconds"] or 0.0, lv[0]))
    return {"setting": label, "changed": True, "writer": v["writer"], "alpha": v["alpha"], "n": v["n"],
            "reasons": reasons, "why": f"highest mean {RULE_METRIC} under {reader} within the guards "
                                       f"({v['readers'][reader][RULE_METRIC]:+.3f}; ties within {TIE} to the cheaper)"}


def run(briefs, writers: list[GridWriter], alphas, best_of, reader_specs: list[ReaderSpec], sampler, cache: ScoreCache,
        open_writer: Callable, readers: Readers, notes_tokens: int, progress: bool = True) -> dict:
    """Write every (writer, alpha, brief, seed) once (cached: an interrupted grid resumes), pick per setting,
    read the picks. Returns {"rows": [...], "drafts": [...], "timing": {...}}."""
    from tqdm import tqdm

    drafts, timing = [], {}
    total = len(writers) * len(alphas) * len(briefs) * sum(best_of)
    bar = tqdm(total=total, desc="grid drafts", unit="draft", file=sys.stderr, disable=not progress)
    for w in writers:
        t0 = time.perf_counter()
        with Lazy(lambda: open_writer(w)) as writer:
            for alpha in alphas:
                for rec in briefs:
                    extra = notes_tokens if (w.adapter and w.notes) else 0
                    s = dataclasses.replace(sampler, seed=0)
                    key = cache.key("grid-draft", ENGINE, w.adapter_sha256, w.notes, float(alpha), rec.fields,
                                    s.to_dict(), extra)
                    got = cache.get(key)
                    if got is None:
                        got = writer().draft(rec.brief(), s, float(alpha), w.notes, extra)
                        cache.put(key, got)
                    drafts.append({"writer": w.name, "alpha": float(alpha), "brief": rec.id, "seed": 0, "n": 1,
                                   "budget": sampler.max_tokens, **got})
                    bar.update(1)
                    for n in (n for n in best_of if n > 1):     # best of n: n drafts side by side, one batch
                        key = cache.key("grid-batch", ENGINE, w.adapter_sha256, w.notes, float(alpha), rec.fields,
                                        s.to_dict(), extra, n)
                        batch = cache.get(key)
                        if batch is None:
                            batch = writer().drafts(rec.brief(), s, float(alpha), w.notes, extra, n)
                            cache.put(key, batch)
                        drafts += [{"writer": w.name, "alpha": float(alpha), "brief": rec.id, "n": n,
                                    "budget": sampler.max_tokens, **d, "seconds": batch["seconds"]}
                                   for d in batch["drafts"]]
                        bar.update(n)
        timing[f"write {w.name}"] = time.perf_counter() - t0   # this run: near 0 when every draft is cached
        timing[f"write {w.name}, as measured"] = sum(d["seconds"] for d in drafts if d["writer"] == w.name
                                                     and (d["n"] == 1 or d["seed"] == 0))
    bar.close()
    by_id = {rec.id: rec for rec in briefs}
    rows = []
    for w in writers:
        for alpha in alphas:
            for rec in briefs:
                pool = [d for d in drafts if d["writer"] == w.name and d["alpha"] == float(alpha) and d["brief"] == rec.id]
                for n in best_of:
                    d = pick([d for d in pool if d["n"] == n], n)
                    rows.append({"writer": w.name, "alpha": float(alpha), "n": int(n), "brief": rec.id, "seed": d["seed"],
                                 "text": d["text"], "notes": d.get("notes", ""), "seconds": d["seconds_setting"],
                                 **text_metrics(d["text"], rec.brief().text()), "scores": {}})
    for r in reader_specs:
        t0 = time.perf_counter()
        items = [(cache.key("grid-read", r.sha256, r.template, by_id[row["brief"]].fields, row["text"]), row["text"],
                  by_id[row["brief"]].brief()) for row in rows]
        for row, got in zip(rows, read_drafts(items, r, readers, cache, keep=_kept, progress=progress)):
            # a read cached under the 3-word rule comes back under the score's rule (copyrule.follow)
            if got is not None:
                got = {**got, "I_uncopied_budget": got["I_uncopied"] / sampler.max_tokens}
            row["scores"][r.name] = got
        timing[f"read {r.name}"] = time.perf_counter() - t0
    return {"rows": rows, "drafts": drafts, "timing": timing}


def _kept(full: dict) -> dict:
    """What the cache keeps of a grid read (the record format of "grid-read" entries)."""
    got = {k: full[k] for k in ("n_tokens", "I", "I_uncopied", "I_per_token", "I_uncopied_per_token")}
    got["copy_rules"] = full.get("copy_rules")
    return got
