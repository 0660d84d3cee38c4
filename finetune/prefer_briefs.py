"""The training briefs of `python -m finetune prefer`: the corpus's training briefs plus the briefs written for
preference tuning, their spread, and the check that none comes close to an evaluation brief or pair.

    python -m finetune prefer-briefs            # the spread audit and the disjointness check, on the real files

A brief file holds one JSON object per line, the format of eval/data/briefs.jsonl:
{"id", "genre", "task", "intent", "audience", "world", "text_so_far"} (text_so_far may be empty).

Disjointness (the issue's test): a training brief may share at most MAX_SHARED of its word bigrams with any
evaluation brief (eval/data/briefs.jsonl) or any pair context (eval/data/pairs.jsonl), measured as the
card's brief overlap (`assistant.copying.brief_overlap`: share of the first text's bigrams found in the
second); an id or a whole text that an evaluation file also holds is refused outright.

    >>> shared_share("the old lamp room smelled of oil", "a lamp room smelled")   # 2 of 6 bigrams
    0.3333333333333333
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from assistant.brief import Brief
from assistant.copying import brief_overlap

from . import annotations
from .errors import ConfigError

BRIEF_FIELDS = ("id", "genre", "task", "intent", "audience", "world", "text_so_far")
MAX_SHARED = 0.30   # share of a training brief's word bigrams found in one evaluation text, at most
# Kinds of task, by the first keyword the task names (audit only; "other" is fine, a spread is the point).
TASK_KINDS = (("open", "opening"), ("begin", "opening"), ("continu", "continuation"), ("revis", "revision"),
              ("rewrite", "revision"), ("clos", "ending"), ("end", "ending"), ("final", "ending"),
              ("dialogue", "dialogue"), ("describ", "description"), ("scene", "scene"), ("letter", "letter"),
              ("poem", "poem"))


@dataclass(frozen=True)
class TrainingBrief:
    id: str
    genre: str
    brief: Brief
    source: str          # "file:line"

    @property
    def fields(self) -> dict:
        return self.brief.to_dict()


def shared_share(text: str, other: str) -> float:
    """Share of `text`'s word bigrams that `other` also holds (0.0 for a text of fewer than 2 words)."""
    return brief_overlap(text, other) or 0.0


def load_corpus_briefs(path: str | Path) -> list[TrainingBrief]:
    """The briefs of the corpus's training annotations (split "train"; the held-out ones stay held out)."""
    return [TrainingBrief(a.id, a.genre, a.brief, a.where) for a in annotations.load(path) if a.split == "train"]


def load_brief_file(path: str | Path) -> list[TrainingBrief]:
    """Briefs in the eval brief format; every problem of the file listed in one ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"brief file {path} does not exist: write the training briefs there "
                          "(one JSON object per line: " + ", ".join(BRIEF_FIELDS) + ")")
    out, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not valid JSON ({e.msg})")
            continue
        bad = [k for k in BRIEF_FIELDS if not isinstance(obj.get(k), str)] + [k for k in obj if k not in BRIEF_FIELDS]
        bad += [k for k in ("id", "task") if isinstance(obj.get(k), str) and not obj[k].strip()]
        if bad:
            problems.append(f"{where}: fields {sorted(set(bad))} missing, empty, not text or unknown")
            continue
        out.append(TrainingBrief(obj["id"], obj["genre"], Brief(**{k: obj[k] for k in BRIEF_FIELDS[2:]}), where))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in {path}: " + "; ".join(problems))
    return out


def load_training_briefs(corpus: str | Path | None, files) -> list[TrainingBrief]:
    """Corpus training briefs (corpus "" or None: none) and every brief file, in order; ids must be unique."""
    briefs = load_corpus_briefs(corpus) if corpus else []
    for f in files:
        briefs += load_brief_file(f)
    seen: dict[str, str] = {}
    dup = []
    for b in briefs:
        if b.id in seen:
            dup.append(f"{b.id} at {b.source} and {seen[b.id]}")
        seen.setdefault(b.id, b.source)
    if dup:
        raise ConfigError("training brief ids used twice: " + "; ".join(dup))
    return briefs


def evaluation_texts(brief_files, pair_files) -> list[tuple[str, str]]:
    """(label, text) of every evaluation brief (all its fields) and pair context."""
    out = []
    for f in brief_files:
        for line in Path(f).read_text(encoding="utf-8").splitlines():
            if line.strip():
                o = json.loads(line)
                out.append((f"brief {o['id']}", Brief(**{k: o.get(k, "") for k in BRIEF_FIELDS[2:]}).text()))
    for f in pair_files:
        for line in Path(f).read_text(encoding="utf-8").splitlines():
            if line.strip():
                o = json.loads(line)
                out.append((f"pair {o['id']}", o["context"]))
    return out


def disjointness(briefs: list[TrainingBrief], brief_files, pair_files, limit: float = MAX_SHARED) -> dict:
    """{"problems": [...], "worst": [(share, training id, evaluation label)] top 5}: a problem per training brief
    that shares more than `limit` of its bigrams with an evaluation text, or has an evaluation id or text."""
    evals = evaluation_texts(brief_files, pair_files)
    eval_ids = {label.split(" ", 1)[1] for label, _ in evals}
    norm = lambda t: re.sub(r"\s+", " ", t.strip().lower())   # noqa: E731
    eval_norm = {norm(t) for _, t in evals}
    problems, worst = [], []
    for b in briefs:
        text = b.brief.text()
        if b.id in eval_ids:
            problems.append(f"{b.source}: id {b.id!r} is an evaluation id")
        if norm(text) in eval_norm or any(norm(v) in eval_norm for v in b.fields.values() if len(v) > 40):
            problems.append(f"{b.source}: {b.id} repeats an evaluation text")
        share, label = max(((shared_share(text, t), lab) for lab, t in evals), default=(0.0, ""))
        worst.append((share, b.id, label))
        if share > limit:
            problems.append(f"{b.source}: {b.id} shares {share:.0%} of its word bigrams with {label} "
                            f"(at most {limit:.0%}): rewrite it further from the evaluation sets")
    return {"problems": problems, "worst": sorted(worst, reverse=True)[:5], "limit": limit}


def task_kind(task: str) -> str:
    t = task.lower()
    hits = [(t.find(k), kind) for k, kind in TASK_KINDS if k in t]
    return min(hits)[1] if hits else "other"


def spread(briefs: list[TrainingBrief]) -> dict:
    """Counts by genre, audience (its first words), task kind and source file; the share with text so far."""
    def top(counter: Counter) -> dict:
        return dict(counter.most_common())
    n = len(briefs)
    return {"n": n,
            "sources": top(Counter(b.source.rsplit(":", 1)[0] for b in briefs)),
            "genres": top(Counter(b.genre or "(none)" for b in briefs)),
            "audiences": top(Counter(" ".join(b.brief.audience.lower().split()[:3]) for b in briefs)),
            "task_kinds": top(Counter(task_kind(b.brief.task) for b in briefs)),
            "with_text_so_far": sum(bool(b.brief.text_so_far.strip()) for b in briefs) / max(n, 1),
            "distinct_intents": len({b.brief.intent.strip().lower() for b in briefs})}


def format_spread(s: dict) -> str:
    lines = [f"{s['n']} training briefs; {s['with_text_so_far']:.0%} with text so far; "
             f"{s['distinct_intents']} distinct intents", "sources: " + _pairs(s["sources"])]
    for key in ("genres", "task_kinds", "audiences"):
        d = s[key]
        lines.append(f"{key} ({len(d)}): " + _pairs(dict(list(d.items())[:15])) + (" ..." if len(d) > 15 else ""))
    return "\n".join(lines)


def _pairs(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())
