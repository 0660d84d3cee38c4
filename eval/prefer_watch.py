"""The reward-hacking watch of issue 21, whole: the training reward before and after preference tuning (the
judge's, on the training briefs) next to what the outside readers of the grid say on the held-out briefs.

    python -m eval prefer-watch --grid eval/results/generate-grid-prefer/report.json \\
        --run dpo=models/cqa-prefer-dpo rft=models/cqa-prefer-rft --start passage

Per recipe: from the watch of `python -m finetune prefer` (RUN/report.json in its run folder, or the "watch"
rounds of the installed model's manifest.json, which is committed) the mean reward, brief overlap, words,
seq-rep-4, distinct-2 and share passing the guards, round 0 (the starting writer) -> round 1 (the trained
one); from the grid report, the trained writer's mean I over uncopied tokens per token under the outside
reader against the starting writer's at the same setting (α 0 and α 0.5, N 1; beside it at α 0 the same
reader's I over uncopied tokens per *budget* token, the reward's own quantity, which pays for length), and a
paired one-sided Wilcoxon test over the held-out briefs in the reward's direction (the grid's rows: one pick
per brief).
`follows` at α 0: "yes" when the reader moved the reward's way at p < 0.05, "n.s." when it moved that way
but not significantly, "no" when it moved the other way. A reward that rises while the reader does not
follow is the writer learning its judge, not the craft; the README says so plainly.

    >>> follows(+0.10, +0.02, 0.01), follows(+0.10, +0.02, 0.40), follows(+0.10, -0.01, 0.9), follows(-0.05, -0.02, 0.03)
    ('yes', 'n.s.', 'no', 'yes')
"""
from __future__ import annotations

import json
from pathlib import Path

from assistant.errors import BadInput

from .stats import wilcoxon_greater
from .tables import md_table, num, pct

MEASURES = ("reward", "brief_overlap", "words", "repetition_rate", "distinct_2")
ALPHA_SIG = 0.05
PER_TOKEN, BUDGET = "I_uncopied_per_token", "I_uncopied_budget"   # the rule's metric; the reward's own quantity
# the grid readings beside the reward: the one-draft settings the goal is about, and at α 0 per budget
# token too (the reward's quantity: length counts). column -> (alpha, n, metric)
READINGS = {"α=0": (0.0, 1, PER_TOKEN), "α=0.5": (0.5, 1, PER_TOKEN), "budget α=0": (0.0, 1, BUDGET)}


def follows(reward_change: float, reader_change: float, p: float | None) -> str:
    """Did the outside reader move the way the training reward moved: significantly ("yes"), the same way but
    within noise ("n.s."), or the other way ("no")?"""
    if (reward_change > 0) != (reader_change > 0):
        return "no"
    return "yes" if p is not None and p < ALPHA_SIG else "n.s."


def paired_p(rows: list[dict], reader: str, new: str, start: str, alpha: float, n: int, up: bool,
             metric: str = PER_TOKEN) -> float | None:
    """One-sided Wilcoxon p that `new` reads higher (up) or lower than `start` at one setting, paired by brief."""
    def picks(writer):
        return {r["brief"]: r["scores"][reader][metric] for r in rows
                if (r["writer"], r["alpha"], r["n"]) == (writer, alpha, n) and reader in (r.get("scores") or {})
                and r["scores"][reader].get(metric) is not None}
    a, b = picks(new), picks(start)
    d = [(a[k] - b[k]) * (1 if up else -1) for k in sorted(a.keys() & b.keys())]
    return wilcoxon_greater(d) if d else None


def _label(writer: str, alpha: float, n: int) -> str:
    return f"{writer} α={alpha:g} N={n}"


def table(runs: dict[str, dict], grid: dict, start: str, reader: str | None = None) -> list[dict]:
    """One row per recipe: watch rounds 0 and 1, and the grid's reader means of the new writer vs the start."""
    summary = grid.get("summary") or {}
    reader = reader or grid.get("choice_reader")
    rows = []
    for name, watch in runs.items():
        rounds = watch.get("rounds", {})
        r0, r1 = rounds.get("0", {}).get("all", {}), rounds.get("1", {}).get("all", {})
        row = {"recipe": name, "passing": (rounds.get("0", {}).get("share_passing"),
                                           rounds.get("1", {}).get("share_passing"))}
        for k in MEASURES:
            row[k] = (r0.get(k), r1.get(k))
        d_reward = _diff(row["reward"])
        for col, (alpha, n, metric) in READINGS.items():
            mean = lambda w: ((summary.get(_label(w, alpha, n)) or {}).get("readers", {})   # noqa: E731
                              .get(reader, {}).get(metric))
            row[f"reader {col}"] = (mean(start), mean(name))
            row[f"p {col}"] = None if d_reward is None else paired_p(grid.get("rows") or [], reader, name, start,
                                                                      alpha, n, d_reward > 0, metric)
        d_reader = _diff(row["reader α=0"])
        row["follows"] = None if d_reward is None or d_reader is None else follows(d_reward, d_reader, row["p α=0"])
        rows.append(row)
    return rows


def _diff(pair):
    a, b = pair
    return None if a is None or b is None else b - a


def markdown(rows: list[dict], reader: str, start: str) -> str:
    head = ["recipe", "reward 0 → 1", "passing", "brief overlap", "words", "seq-rep-4", "distinct-2",
            f"{reader} α=0 ({start} → new)", "p", f"{reader} α=0.5", "p", "reader follows (α=0)",
            f"{reader} per budget α=0", "p"]
    body = []
    for r in rows:
        arrow = lambda k, f=".3f": f"{num(r[k][0], f)} → {num(r[k][1], f)}"   # noqa: E731
        body.append([r["recipe"], arrow("reward"), f"{pct(r['passing'][0])} → {pct(r['passing'][1])}",
                     f"{pct(r['brief_overlap'][0])} → {pct(r['brief_overlap'][1])}", arrow("words", ".0f"),
                     arrow("repetition_rate"), arrow("distinct_2"), arrow("reader α=0"), num(r["p α=0"], ".3g"),
                     arrow("reader α=0.5"), num(r["p α=0.5"], ".3g"),
                     {"yes": "yes", "n.s.": "**n.s.**", "no": "**no**", None: "–"}[r["follows"]],
                     arrow("reader budget α=0"), num(r["p budget α=0"], ".3g")])
    return "\n".join(md_table(head, body)) + "\n"


def run(runs: list[str], grid_path: Path, start: str, reader: str | None) -> str:
    grid = _read(grid_path)
    watches = {}
    for spec in runs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise BadInput(f"--run {spec!r}: write it as NAME=FOLDER, NAME the writer's name in the grid")
        watches[name] = _watch(Path(path))
    reader = reader or grid.get("choice_reader") or ""
    return markdown(table(watches, grid, start, reader), reader, start)


def _watch(folder: Path) -> dict:
    """The watch rounds from a prefer run folder (report.json) or an installed model folder (manifest.json)."""
    if (folder / "report.json").is_file():
        return _read(folder / "report.json")
    manifest = folder / "manifest.json"
    if manifest.is_file():
        rounds = json.loads(manifest.read_text(encoding="utf-8")).get("watch")
        if not rounds:
            raise BadInput(f"{manifest} has no watch rounds: run `python -m finetune prefer` through its watch stage")
        return {"rounds": rounds}
    raise BadInput(f"{folder} holds neither report.json (a prefer run) nor manifest.json (an installed model)")


def _read(path: Path) -> dict:
    if not Path(path).is_file():
        raise BadInput(f"{path} does not exist: run `python -m finetune prefer` (watch) and `python -m eval grid` first")
    return json.loads(Path(path).read_text(encoding="utf-8"))
