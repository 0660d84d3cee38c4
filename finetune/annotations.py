"""Annotation schema, loading and validation (the format is documented in finetune/FORMAT.md).

    python -m finetune validate finetune/data/cqa.jsonl

Every problem is reported as `file:line: field: message`, all of them, not just the first:

    >>> check_record({"id": "x"}, "a.jsonl:3")[:2]
    ['a.jsonl:3: genre: missing', 'a.jsonl:3: brief: missing']
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.brief import Brief

from .errors import AnnotationError  # noqa: F401 - raised here, imported from here by callers

DIMENSIONS = ("ethos", "mythos", "lexis", "dianoia")
SOURCES = ("intent", "audience", "reality", "craft")
SPLITS = ("train", "heldout")
BRIEF_FIELDS = ("task", "intent", "audience", "world", "text_so_far")
BRIEF_REQUIRED = ("task", "intent", "audience", "world")   # text_so_far may be ""
STEP_FIELDS = ("dimension", "source", "choice", "alternative", "why")
TOP_FIELDS = ("id", "genre", "brief", "reasoning", "passage", "split")
STEPS_RANGE = (5, 10)            # reasoning steps per annotation
CHOICE_WORDS = (2, 12)           # words quoted from the passage
PASSAGE_WORDS = (80, 300)
SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{1,40}\|>")  # chat-template markers such as <|im_end|>


@dataclass(frozen=True)
class Step:
    dimension: str
    source: str
    choice: str       # words quoted from the passage
    alternative: str  # the likelier, weaker option rejected
    why: str


@dataclass(frozen=True)
class Annotation:
    id: str
    genre: str
    brief: Brief
    reasoning: tuple[Step, ...]
    passage: str
    split: str
    where: str = ""   # "file:line", for messages

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "Annotation":
        steps = tuple(Step(**{k: s[k] for k in STEP_FIELDS}) for s in d["reasoning"])
        return cls(d["id"], d["genre"], Brief(**d["brief"]), steps, d["passage"], d["split"], where)


def _text(obj: dict, key: str, where: str, field: str, problems: list, *, empty_ok=False) -> str | None:
    if key not in obj:
        problems.append(f"{where}: {field}: missing")
        return None
    value = obj[key]
    if not isinstance(value, str):
        problems.append(f"{where}: {field}: must be a string, got {type(value).__name__}")
        return None
    if not empty_ok and not value.strip():
        problems.append(f"{where}: {field}: must not be empty")
    if SPECIAL_TOKEN.search(value):
        problems.append(f"{where}: {field}: contains the chat-template marker "
                        f"{SPECIAL_TOKEN.search(value).group()!r}: remove it")
    return value


def _unknown(obj: dict, known: tuple, where: str, prefix: str, problems: list) -> None:
    for key in obj:
        if key not in known:
            problems.append(f"{where}: {prefix}{key}: unknown field (known: {', '.join(known)})")


def _check_step(step, i: int, passage: str | None, where: str, problems: list) -> None:
    f = f"reasoning[{i}]"
    if not isinstance(step, dict):
        problems.append(f"{where}: {f}: must be an object with {', '.join(STEP_FIELDS)}")
        return
    _unknown(step, STEP_FIELDS, where, f + ".", problems)
    for key, allowed in (("dimension", DIMENSIONS), ("source", SOURCES)):
        value = _text(step, key, where, f"{f}.{key}", problems)
        if value is not None and value.strip() and value not in allowed:
            problems.append(f"{where}: {f}.{key}: {value!r} is not one of {'|'.join(allowed)}")
    choice = _text(step, "choice", where, f"{f}.choice", problems)
    alternative = _text(step, "alternative", where, f"{f}.alternative", problems)
    _text(step, "why", where, f"{f}.why", problems)
    if choice and choice.strip():
        n = len(choice.split())
        if not CHOICE_WORDS[0] <= n <= CHOICE_WORDS[1]:
            problems.append(f"{where}: {f}.choice: {n} words; quote {CHOICE_WORDS[0]}-{CHOICE_WORDS[1]} "
                            "words of the passage")
        if isinstance(passage, str) and choice not in passage:
            problems.append(f"{where}: {f}.choice: {choice!r} does not occur in the passage "
                            "(it must be an exact, case-sensitive quote)")
        if alternative is not None and alternative.strip() == choice.strip():
            problems.append(f"{where}: {f}.alternative: is the same as the choice")


def check_record(obj, where: str) -> list[str]:
    """Every problem with one parsed JSON value, as `where: field: message` lines."""
    problems: list[str] = []
    if not isinstance(obj, dict):
        return [f"{where}: -: each line must be a JSON object, got {type(obj).__name__}"]
    missing = [k for k in TOP_FIELDS if k not in obj]
    problems += [f"{where}: {k}: missing" for k in missing]
    _unknown(obj, TOP_FIELDS, where, "", problems)
    for key in ("id", "genre"):
        if key in obj:
            _text(obj, key, where, key, problems)
    passage = _text(obj, "passage", where, "passage", problems) if "passage" in obj else None
    if passage and passage.strip():
        n = len(passage.split())
        if not PASSAGE_WORDS[0] <= n <= PASSAGE_WORDS[1]:
            problems.append(f"{where}: passage: {n} words; write {PASSAGE_WORDS[0]}-{PASSAGE_WORDS[1]}")
    if "split" in obj and obj["split"] not in SPLITS:
        problems.append(f"{where}: split: {obj['split']!r} is not one of {'|'.join(SPLITS)}")
    if "brief" in obj:
        brief = obj["brief"]
        if not isinstance(brief, dict):
            problems.append(f"{where}: brief: must be an object with {', '.join(BRIEF_FIELDS)}")
        else:
            _unknown(brief, BRIEF_FIELDS, where, "brief.", problems)
            for key in BRIEF_FIELDS:
                _text(brief, key, where, f"brief.{key}", problems, empty_ok=key not in BRIEF_REQUIRED)
    if "reasoning" in obj:
        steps = obj["reasoning"]
        if not isinstance(steps, list):
            problems.append(f"{where}: reasoning: must be a list of steps")
        else:
            if not STEPS_RANGE[0] <= len(steps) <= STEPS_RANGE[1]:
                problems.append(f"{where}: reasoning: {len(steps)} steps; write "
                                f"{STEPS_RANGE[0]}-{STEPS_RANGE[1]}")
            for i, step in enumerate(steps):
                _check_step(step, i, passage, where, problems)
    return problems


def read(path: str | Path) -> tuple[list[Annotation], list[str]]:
    """(annotations, problems) from a JSON Lines file; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        return [], [f"{path}:0: file: does not exist (give the path of a .jsonl annotation file)"]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        return [], [f"{path}:0: file: not UTF-8 ({e.reason} at byte {e.start}): re-save it as UTF-8"]
    out, problems, seen = [], [], {}
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: json: {e.msg} at column {e.colno}: each line must be one JSON object")
            continue
        mine = check_record(obj, where)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            if obj["id"] in seen:
                mine.append(f"{where}: id: {obj['id']!r} already used on line {seen[obj['id']]}")
            seen.setdefault(obj["id"], no)
        problems += mine
        if not mine:
            out.append(Annotation.from_dict(obj, where))
    if not problems and not out:
        problems.append(f"{path}:0: file: holds no annotations (the file is empty)")
    return out, problems


def load(path: str | Path) -> list[Annotation]:
    """The annotations of a file, or AnnotationError listing every problem."""
    annotations, problems = read(path)
    if problems:
        raise AnnotationError(problems)
    return annotations
