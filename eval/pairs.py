"""Pair and brief files: the fixed JSON Lines formats, loaded and validated.

    python -m eval validate eval/data/pairs_literary.jsonl eval/data/pairs_factual.jsonl eval/data/briefs.jsonl

A pair (one JSON object per line) is
    {"id", "group": "literary|factual", "context", "high", "degraded", "axis": "cliche|audience|reality|craft"}
`context` is the brief written as prose, `high` an excellent passage, `degraded` the same
content degraded along `axis`, about the same length (word-count ratio within LENGTH_RATIO).

A brief (for `python -m eval generate`) is
    {"id", "genre", "task", "intent", "audience", "world", "text_so_far"}

Every problem in a file is reported at once, one per line, as `file:line: field: message`.

    >>> sentences("He left. The old lamp room smelled of paraffin and rain!")
    ['he left', 'the old lamp room smelled of paraffin and rain']
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import BadInput

DATA = Path(__file__).resolve().parent / "data"   # the committed pair and brief sets
GROUPS = ("literary", "factual")
AXES = ("cliche", "audience", "reality", "craft")
PAIR_FIELDS = ("id", "group", "context", "high", "degraded", "axis")
BRIEF_FIELDS = ("id", "genre", "task", "intent", "audience", "world", "text_so_far")
LENGTH_RATIO = (2 / 3, 3 / 2)   # allowed words(degraded) / words(high): "about the same length"
MIN_SHARED_WORDS = 6            # shorter sentences ("He nodded.") may coincide innocently


class FormatError(BadInput):
    """One or more `file:line: field: message` problems, all listed in the message (and in `problems`)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s) listed below)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more + ("\n" + "\n".join(problems[1:]) if len(problems) > 1 else ""))


@dataclass(frozen=True)
class Pair:
    id: str
    group: str
    axis: str
    context: str     # the brief as prose (Y)
    high: str        # the excellent passage
    degraded: str    # the same content degraded along `axis`
    source: str = "" # "file:line" it came from


@dataclass(frozen=True)
class BriefRecord:
    id: str
    genre: str
    fields: dict     # task, intent, audience, world, text_so_far -> assistant.brief.Brief(**fields)
    source: str = ""

    def brief(self):
        """The assistant's Brief of these fields (what a writer writes from and a reader reads under)."""
        from assistant.brief import Brief
        return Brief(**self.fields)


def default_pairs_files() -> list[Path]:
    """eval/data/pairs.jsonl when it exists, else the pair sets it is made of."""
    combined = DATA / "pairs.jsonl"
    return [combined] if combined.is_file() else sorted(DATA.glob("pairs_*.jsonl"))


def default_briefs_files() -> list[Path]:
    """The held-out briefs of `eval generate` and `eval grid`."""
    return [DATA / "briefs.jsonl"]


def read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, object) for every non-blank line, and `file:line: message` problems."""
    path = Path(path)
    if not path.is_file():
        return [], [f"{path}: file not found"]
    rows, problems = [], []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
                continue
            rows.append((n, obj))
    if not rows and not problems:
        problems.append(f"{path}: the file holds no records")
    return rows, problems


def _check_fields(where: str, obj: dict, names: tuple[str, ...], allow_empty: tuple[str, ...] = ()) -> list[str]:
    problems = [f"{where}: {k}: unknown field (known: {', '.join(names)})" for k in obj if k not in names]
    for k in names:
        if k not in obj:
            problems.append(f"{where}: {k}: missing")
        elif not isinstance(obj[k], str):
            problems.append(f"{where}: {k}: must be a string, got {type(obj[k]).__name__}")
        elif not obj[k].strip() and k not in allow_empty:
            problems.append(f"{where}: {k}: must not be empty")
    return problems


def validate_pair(where: str, obj: dict) -> list[str]:
    """Problems with one pair object, each `where: field: message` (none: it is valid)."""
    problems = _check_fields(where, obj, PAIR_FIELDS)
    ok = {k for k in PAIR_FIELDS if isinstance(obj.get(k), str) and obj[k].strip()}
    if "group" in ok and obj["group"] not in GROUPS:
        problems.append(f"{where}: group: {obj['group']!r} is not one of {', '.join(GROUPS)}")
    if "axis" in ok and obj["axis"] not in AXES:
        problems.append(f"{where}: axis: {obj['axis']!r} is not one of {', '.join(AXES)}")
    if {"high", "degraded"} <= ok:  # both texts present: compare them
        problems += _compare_texts(where, obj["high"], obj["degraded"])
    return problems


def _compare_texts(where: str, high: str, degraded: str) -> list[str]:
    if high.strip() == degraded.strip():
        return [f"{where}: degraded: is the same text as high"]
    ratio = len(degraded.split()) / max(1, len(high.split()))
    lo, hi = LENGTH_RATIO
    if lo <= ratio <= hi:
        return []
    return [f"{where}: degraded: {len(degraded.split())} words against {len(high.split())} in high "
            f"(ratio {ratio:.2f}); keep it about the same length (ratio {lo:.2f}-{hi:.2f}) so ΔI compares "
            "like with like"]


def load_pairs(paths) -> list[Pair]:
    """All pairs of one or more files, in file order; raises FormatError listing every problem."""
    pairs, problems, seen = [], [], {}
    for path in ([paths] if isinstance(paths, (str, Path)) else list(paths)):
        rows, errs = read_jsonl(Path(path))
        problems += errs
        for n, obj in rows:
            where = f"{path}:{n}"
            errs = validate_pair(where, obj)
            if not errs and obj["id"] in seen:
                errs = [f"{where}: id: {obj['id']!r} already used at {seen[obj['id']]}"]
            problems += errs
            if not errs:
                seen[obj["id"]] = where
                pairs.append(Pair(obj["id"], obj["group"], obj["axis"], obj["context"], obj["high"],
                                  obj["degraded"], where))
    if problems:
        raise FormatError(problems)
    return pairs


def load_briefs(paths) -> list[BriefRecord]:
    """All briefs of one or more files; raises FormatError listing every problem."""
    out, problems, seen = [], [], {}
    for path in ([paths] if isinstance(paths, (str, Path)) else list(paths)):
        rows, errs = read_jsonl(Path(path))
        problems += errs
        for n, obj in rows:
            where = f"{path}:{n}"
            errs = _check_fields(where, obj, BRIEF_FIELDS, allow_empty=("text_so_far", "genre"))
            if not errs and obj["id"] in seen:
                errs = [f"{where}: id: {obj['id']!r} already used at {seen[obj['id']]}"]
            problems += errs
            if not errs:
                seen[obj["id"]] = where
                out.append(BriefRecord(obj["id"], obj["genre"],
                                       {k: obj[k] for k in BRIEF_FIELDS if k not in ("id", "genre")}, where))
    if problems:
        raise FormatError(problems)
    return out


def files_info(paths) -> list[dict]:
    """[{path, sha256, lines}] for the report: which exact files were evaluated."""
    out = []
    for p in paths:
        data = Path(p).read_bytes()
        shown = Path(p).resolve()
        shown = shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown
        out.append({"path": str(shown), "sha256": hashlib.sha256(data).hexdigest(),
                    "lines": sum(1 for line in data.splitlines() if line.strip())})
    return out


# ---- leakage: no sentence of the evaluation may appear in the training corpus -------------
_SENT_END = re.compile(r"(?<=[.!?;:])[\"'”’)\]]*\s+|\n+")
_NON_WORD = re.compile(r"[^a-z0-9']+")


def sentences(text: str) -> list[str]:
    """Sentences, normalised for comparison: lower case, punctuation and extra spaces removed."""
    out = []
    for s in _SENT_END.split(text.replace("\u2019", "'")):
        norm = " ".join(_NON_WORD.sub(" ", s.lower()).split())
        if norm:
            out.append(norm)
    return out


def shared_sentences(texts_a, texts_b, min_words: int = MIN_SHARED_WORDS) -> set[str]:
    """Normalised sentences of at least `min_words` words that occur in both collections."""
    def collect(texts):
        return {s for t in texts for s in sentences(t) if len(s.split()) >= min_words}
    return collect(texts_a) & collect(texts_b)
