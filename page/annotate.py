"""The Annotate tab: an expert grows the corpus in the app (UI only; the logic is finetune/workbench.py).

    python app.py --annotations finetune/data/cqa.jsonl     # the tab appears; Save appends to that file

One form per annotation in the corpus format (finetune/FORMAT.md): genre, id, split, the brief, the passage
and 1-10 reasoning steps as rows. Every change re-runs the corpus validator (every problem by field), marks
each step's choice in the passage, and updates the file's source/dimension shares with the audit's
under-15 % warning. "Suggest steps" asks the CQA model for its notes on the brief (the backend's write_notes,
in this process or on Ray) and parses them into candidate steps, which fill the rows for the expert to edit or
delete; nothing is saved without the Save click.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from assistant.brief import Brief
from assistant.errors import BadBrief, BadInput, BadText
from finetune import workbench
from finetune.annotations import BRIEF_FIELDS, DIMENSIONS, SOURCES, STEP_FIELDS

from .plumbing import user_error_messages

MAX_STEPS = 10
START_STEPS = 5      # the format asks for 5 to 10


def _split_values(values):
    """Gradio's flat input list -> (id, genre, split, brief, passage, n_steps, steps)."""
    id_, genre, split = values[:3]
    brief = dict(zip(BRIEF_FIELDS, values[3:8]))
    passage, n = values[8], int(values[9])
    cells = values[10:]
    steps = [dict(zip(STEP_FIELDS, cells[5 * i: 5 * i + 5])) for i in range(n)]
    return id_, genre, split, brief, passage, n, steps


def _check(path: Path, *values):
    id_, genre, split, brief, passage, n, steps = _split_values(values)
    rec = workbench.record(id_, genre, split, brief, passage, steps)
    found = workbench.problems(rec, workbench.existing_ids(path))
    if found:
        lines = "\n".join(f"- `{p.split(': ', 1)[1].split(': ', 1)[0]}`: {p.split(': ', 2)[-1]}" for p in found)
        status = f"**{len(found)} problem{'s' if len(found) > 1 else ''} before this annotation can be saved:**\n{lines}"
    else:
        status = "**Valid**: this annotation passes `python -m finetune validate`. Save appends it to the file."
    by_source, by_dim, warnings = workbench.coverage(path, rec)
    cov = ("Steps in the file with this annotation, **by source**: "
           + " · ".join(f"{k} {v:.0%}" for k, v in by_source.items())
           + "  \n**by dimension**: " + " · ".join(f"{k} {v:.0%}" for k, v in by_dim.items())
           + "".join(f"  \n⚠️ {w}" for w in warnings))
    return status, workbench.highlight(rec["passage"], rec["reasoning"]), cov


def _rows(n: int):
    return [gr.update(visible=i < n) for i in range(MAX_STEPS)]


def suggest_steps(backend, b: Brief, passage: str, seed: int = 0) -> list[dict]:
    """Candidate steps for the form: the CQA model's notes for the brief, parsed (choices the passage holds first)."""
    return workbench.candidate_steps(backend.write_notes(b, seed), passage)


def build(path: Path, backend) -> None:
    """The tab's layout and events, inside an open gr.Blocks; Suggest steps asks `backend` for the CQA model's
    notes (assistant/backend.py: in this process or on Ray)."""
    with gr.Tab("Annotate", elem_id="annotate-tab"):
        gr.Markdown(f"Add one annotation to **`{path}`** in the corpus format (`finetune/FORMAT.md`): the brief, "
                    "the passage, and 5-10 reasoning steps (the choice, quoted from the passage; the likelier "
                    "alternative it rejects; why; the constraint source and the dimension).")
        with gr.Row():
            id_ = gr.Textbox(label="Id", placeholder="e.g. mys-013")
            genre = gr.Textbox(label="Genre", placeholder="e.g. mystery")
            split = gr.Radio(["train", "heldout"], value="train", label="Split")
        brief = [gr.Textbox(label=f"Brief: {f.replace('_', ' ')}", lines=2 if f in ("world", "text_so_far") else 1)
                 for f in BRIEF_FIELDS]
        passage = gr.Textbox(label="Passage", lines=6, placeholder="80-300 words")
        n_steps = gr.State(START_STEPS)
        rows, cells = [], []
        for i in range(MAX_STEPS):
            with gr.Row(visible=i < START_STEPS) as row:
                cells += [gr.Dropdown(list(DIMENSIONS), label=f"Step {i + 1} dimension", value=None, scale=1),
                          gr.Dropdown(list(SOURCES), label=f"Step {i + 1} source", value=None, scale=1),
                          gr.Textbox(label=f"Step {i + 1} choice", scale=2),
                          gr.Textbox(label=f"Step {i + 1} alternative", scale=2),
                          gr.Textbox(label=f"Step {i + 1} why", scale=3)]
            rows.append(row)
        with gr.Row():
            add = gr.Button("Add step")
            remove = gr.Button("Remove step")
            suggest = gr.Button("Suggest steps")
            save = gr.Button("Save annotation", variant="primary")
        status = gr.Markdown(elem_id="annotate-problems")
        marked = gr.HTML(elem_id="annotate-passage")
        cov = gr.Markdown(elem_id="annotate-coverage")
        saved = gr.Markdown(elem_id="annotate-saved")
        download = gr.File(value=str(path) if path.is_file() else None, label="The annotation file",
                           interactive=False, elem_id="annotate-file")

        fields = [id_, genre, split, *brief, passage, n_steps, *cells]
        check = lambda *v: _check(path, *v)  # noqa: E731
        gr.on([c.change for c in fields if not isinstance(c, gr.State)] + [n_steps.change], check, fields,
              [status, marked, cov], api_visibility="private", show_progress="hidden")

        def grow(n):
            n = min(int(n) + 1, MAX_STEPS)
            return n, *_rows(n)

        def shrink(n):
            """Hide the last row and empty it, so a hidden step is never validated or saved."""
            old = int(n)
            n = max(old - 1, 1)
            values = [gr.skip()] * (5 * MAX_STEPS)
            if n < old:
                values[5 * (old - 1): 5 * old] = [None, None, "", "", ""]
            return n, *_rows(n), *values

        add.click(grow, n_steps, [n_steps, *rows], api_visibility="private")
        remove.click(shrink, n_steps, [n_steps, *rows, *cells], api_visibility="private")

        def suggested(n, passage_text, *brief_values):
            with user_error_messages():
                b = Brief(**dict(zip(BRIEF_FIELDS, brief_values)))
                if b.is_empty():
                    raise BadBrief("Fill in the brief first: the model suggests steps for a brief.")
                steps = suggest_steps(backend, b, passage_text or "")[:MAX_STEPS]
                if not steps:
                    raise BadText("The model's notes held no step in the expected form: try again (another "
                                  "seed is used each time) or write the steps yourself.")
            n = max(len(steps), 1)
            values = []
            for i in range(MAX_STEPS):
                s = steps[i] if i < len(steps) else {}
                values += [s.get(k) if k in ("dimension", "source") else s.get(k, "") for k in STEP_FIELDS]
            return n, *_rows(n), *values, (f"The CQA model suggested {len(steps)} steps: edit or delete them "
                                           "(a choice must be quoted from the passage); nothing is saved until "
                                           "you click Save.")

        suggest.click(suggested, [n_steps, passage, *brief], [n_steps, *rows, *cells, saved],
                      api_visibility="private")

        def do_save(*values):
            with user_error_messages():
                id_v, genre_v, split_v, brief_v, passage_v, n, steps = _split_values(values)
                rec = workbench.record(id_v, genre_v, split_v, brief_v, passage_v, steps)
                try:
                    line = workbench.append(path, rec)
                except BadInput as e:
                    raise BadInput("Not saved: " + str(e).replace(f"{workbench.WHERE}: ", "")) from None
            return f"Saved **{rec['id']}** as line {line} of `{path}`.", str(path)

        save.click(do_save, fields, [saved, download], api_visibility="private")
