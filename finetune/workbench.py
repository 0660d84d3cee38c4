"""The expert's annotation workbench, without the UI: a form's values -> one annotation, checked by the same
validator as `python -m finetune validate`, the passage with each choice marked, the file's running
coverage, candidate steps read from the CQA model's notes, and an atomic append to the corpus file.

    >>> rec = record("t-1", "mystery", "train", {"task": "Open it."}, "The door was open.", [])
    >>> [p.split(": ", 1)[1] for p in problems(rec, [])][:3]
    ['passage: 4 words; write 80-300', 'brief.intent: missing', 'brief.audience: missing']
"""
from __future__ import annotations

import html
import json
import re
import threading
from collections import Counter
from pathlib import Path

from assistant.atomic import atomic_path
from assistant.errors import BadInput

from .annotations import BRIEF_FIELDS, DIMENSIONS, SOURCES, STEP_FIELDS, check_record, read
from .audit import MIN_SOURCE_SHARE

WHERE = "form"
NOTE_LINE = re.compile(r"^- \[(\w+)/(\w+)\] «(.+?)» over «(.+?)»: (.+)$")   # finetune/render.py's notes()
_SAVING = threading.Lock()


def record(id_: str, genre: str, split: str, brief: dict, passage: str, steps: list[dict]) -> dict:
    """The annotation as one JSON object, in FORMAT.md's field order; empty brief fields are left out (the
    validator then names them), empty step rows are dropped."""
    rows = [{k: (s.get(k) or "").strip() for k in STEP_FIELDS} for s in steps]
    rows = [r for r in rows if any(r.values())]
    return {"id": (id_ or "").strip(), "genre": (genre or "").strip(),
            "brief": {k: (brief.get(k) or "").strip() for k in BRIEF_FIELDS if (brief.get(k) or "").strip()
                      or k == "text_so_far"},
            "reasoning": rows, "passage": (passage or "").strip(), "split": split}


def problems(rec: dict, existing_ids: list[str]) -> list[str]:
    """Every problem, as the validator words it (`form: field: message`), plus a duplicate id."""
    out = check_record(rec, WHERE)
    if rec.get("id") and rec["id"] in existing_ids:
        out.append(f"{WHERE}: id: {rec['id']!r} is already in the file; each id must be unique")
    return out


def highlight(passage: str, steps: list[dict]) -> str:
    """The passage as HTML with each step's choice marked (numbered by step); choices not found are listed."""
    spans = []
    for i, s in enumerate(steps, 1):
        c = (s.get("choice") or "").strip()
        if c and c in passage:
            k = passage.index(c)
            spans.append((k, k + len(c), i))
    spans.sort()
    out, pos = [], 0
    for a, b, i in spans:
        if a < pos:          # overlapping choices: mark the first only
            continue
        out.append(html.escape(passage[pos:a]))
        out.append(f'<mark class="choice" title="step {i}">{html.escape(passage[a:b])}<sup>{i}</sup></mark>')
        pos = b
    out.append(html.escape(passage[pos:]))
    missing = [i for i, s in enumerate(steps, 1) if (s.get("choice") or "").strip()
               and (s.get("choice") or "").strip() not in passage]
    note = (f'<p class="choice-missing">Not in the passage: step {", ".join(map(str, missing))}</p>'
            if missing else "")
    return f'<div class="cqa-passage" style="white-space:pre-wrap">{"".join(out)}</div>{note}'


def coverage(path: Path | None, rec: dict | None = None) -> tuple[dict, dict, list[str]]:
    """Step shares by source and by dimension of the file (plus this annotation), and audit's warnings."""
    steps = []
    if path is not None and path.is_file():
        anns, _ = read(path)
        steps = [(s.source, s.dimension) for a in anns for s in a.reasoning]
    if rec:
        steps += [(s.get("source"), s.get("dimension")) for s in rec.get("reasoning", [])]
    n = max(len(steps), 1)
    src = Counter(s for s, _ in steps)
    dim = Counter(d for _, d in steps)
    by_source = {k: src.get(k, 0) / n for k in SOURCES}
    by_dim = {k: dim.get(k, 0) / n for k in DIMENSIONS}
    warnings = [f"source {k!r} is {v:.0%} of reasoning steps (under {MIN_SOURCE_SHARE:.0%}): add steps that "
                f"answer to {k}" for k, v in by_source.items() if steps and v < MIN_SOURCE_SHARE]
    return by_source, by_dim, warnings


def existing_ids(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        return []
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.append(json.loads(line).get("id"))
        except (json.JSONDecodeError, AttributeError):
            continue
    return ids


def append(path: Path, rec: dict) -> int:
    """Append one valid annotation to `path` atomically (the whole file is rewritten to a temp file beside it,
    then renamed over it: a crash leaves the old file or the new one, never half a line). Returns the new
    line number. Raises BadInput (a ValueError) with every problem when the annotation is not valid."""
    with _SAVING:
        found = problems(rec, existing_ids(path))
        if found:
            raise BadInput("; ".join(found))
        old = path.read_bytes() if path.is_file() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        line = json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n"
        with atomic_path(path) as tmp:
            tmp.write_bytes(old + line)
        return old.count(b"\n") + 1


def parse_notes(text: str) -> list[dict]:
    """A tuned model's notes -> candidate steps (lines in finetune/render.py's format; others are skipped).

    >>> parse_notes("- [audience/lexis] «a boiling pan» over «torrential rain»: Children know pans.")
    [{'dimension': 'lexis', 'source': 'audience', 'choice': 'a boiling pan', 'alternative': 'torrential rain', 'why': 'Children know pans.'}]
    """
    out = []
    for line in text.splitlines():
        m = NOTE_LINE.match(line.strip())
        if m and m.group(1) in SOURCES and m.group(2) in DIMENSIONS:
            out.append({"dimension": m.group(2), "source": m.group(1), "choice": m.group(3),
                        "alternative": m.group(4), "why": m.group(5)})
    return out


def candidate_steps(notes: str, passage: str) -> list[dict]:
    """A tuned model's notes for a brief (assistant.backend.write_notes) -> candidate steps for the form, those
    whose choice the passage holds first (the expert can keep them as they are). Candidates only: the expert
    edits or deletes them; a choice the passage does not contain is flagged by the validator.

    >>> notes = "- [craft/lexis] «rain» over «fog»: Sharp.\\n- [reality/mythos] «door» over «gate»: Facts."
    >>> [s["choice"] for s in candidate_steps(notes, "The door was open.")]
    ['door', 'rain']
    """
    return sorted(parse_notes(notes), key=lambda s: s["choice"] not in passage)
