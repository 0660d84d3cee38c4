"""The expert's annotation workbench, without the UI: a form's values -> one annotation, checked by the same
validator as `python -m finetune validate`, the passage with each choice marked, the file's running
coverage, suggested steps from the CQA model, and an atomic append to the corpus file.

    >>> rec = record("t-1", "mystery", "train", {"task": "Open it."}, "The door was open.", [])
    >>> [p.split(": ", 1)[1] for p in problems(rec, [])][:3]
    ['passage: 4 words; write 80-300', 'brief.intent: missing', 'brief.audience: missing']
"""
from __future__ import annotations

import html
import json
import os
import re
import tempfile
import threading
from collections import Counter
from pathlib import Path

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
    flushed, then renamed over it: a crash leaves the old file or the new one, never half a line). Returns
    the new line number. Raises ValueError with every problem when the annotation is not valid."""
    with _SAVING:
        found = problems(rec, existing_ids(path))
        if found:
            raise ValueError("; ".join(found))
        old = path.read_bytes() if path.is_file() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        line = json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(old + line)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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


def suggest_steps(engine, brief, passage: str, seed: int = 0, max_tokens: int = 480) -> list[dict]:
    """Candidate steps from the CQA model: its notes for this brief (it was trained to reason before it
    writes), parsed into rows. Candidates only: the expert edits or deletes them; a choice the passage does
    not contain is flagged by the validator."""
    from assistant.brief import NOTES_HEADER
    from assistant.sampler import Sampler
    from assistant.scoring import prompts_for

    opening = f"{NOTES_HEADER}\n- ["
    gen = engine.tokenize_prompt(prompts_for(engine, brief).conditional) + engine.tokenize_text(opening)
    sampler = Sampler(temperature=0.7, seed=seed, max_tokens=max_tokens, stop=("Passage:",))
    with engine.draft(gen, sampler) as run:
        while run.step() is not None:
            continue
        text = "- [" + run.finish().text
    steps = parse_notes(text)
    # choices that the passage holds first: those the expert can keep as they are
    return sorted(steps, key=lambda s: s["choice"] not in passage)
