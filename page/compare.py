"""The Compare tab: base, then a tuned model, on the Write tab's brief and settings with the same seed; each
scored live as it streams, then which scored higher (bits/token).

    python app.py      # the second tab; /compare (page/api.py) answers the same question as JSON
"""
from __future__ import annotations

import gradio as gr

from assistant import card
from assistant.errors import ModelUnavailable, UnknownModel
from assistant.pool import BASE_LABEL, CQA_LABEL, TUNED, writes_notes

from .plumbing import BRIEF_FIELDS, SAMPLER_FIELDS, Cancels, brief, notes_md, score_json, settings, user_errors
from .write import Shared


def check_tuned(backend, tuned) -> None:
    """`tuned` names a tuned model this server has."""
    if tuned not in TUNED:
        raise UnknownModel(f"unknown tuned model {tuned!r}: choose one of {list(TUNED)}")
    if tuned not in backend.variants():
        raise ModelUnavailable(f"No {tuned} adapter is installed: only the base can run.")


class CompareTab:
    def __init__(self, backend, cancels: Cancels):
        self.backend = backend
        self.cancels = cancels

    def stream(self, b, template, sampler, alpha, strength, cancel=None, tuned=CQA_LABEL):
        """Base then a tuned model on the same brief, seed, guidance: {variant: latest Update} after every token."""
        check_tuned(self.backend, tuned)
        outs = {}
        for variant in (BASE_LABEL, tuned):
            for u in self.backend.write(b, sampler, variant=variant, strength=strength, template=template,
                                        cancel=cancel, guidance=alpha, notes=writes_notes(variant)):
                if u.result is None and variant in outs and outs[variant].result is not None and not u.done:
                    u.result = outs[variant].result   # keep the last live score on screen between two
                outs[variant] = u
                yield outs

    @user_errors
    def compare(self, request: gr.Request, *values):
        n = len(BRIEF_FIELDS)
        b = brief(*values[:n])
        tuned, template, alpha, strength = values[n: n + 4]
        sampler, alpha, strength = settings(dict(zip(SAMPLER_FIELDS, values[n + 4:])), alpha, strength)
        with self.cancels.running(request) as cancel:
            for outs in self.stream(b, template, sampler, alpha, strength, cancel, tuned):
                yield (*(side(outs, v, strength) for v in (BASE_LABEL, tuned)), verdict(outs, strength, tuned))

    def layout(self, shared: Shared) -> None:
        with gr.Tab("Compare", elem_id="compare-tab"):
            gr.Markdown("Base and a tuned model on the brief, sampler settings, brief guidance and CQA strength of "
                        "the Write tab, with the same seed: each scored live as it streams, then which scored higher.")
            tuned_in = [v for v in self.backend.variants() if v in TUNED] or [CQA_LABEL]
            tuned = gr.Radio(tuned_in, value=tuned_in[0], label="Tuned model",
                             info="CQA reasons in notes first; CQA-passage writes the passage at once",
                             elem_id="compare-tuned")
            with gr.Row():
                go = gr.Button("Generate with both", variant="primary")
                stop = gr.Button("Stop comparing")
            result = gr.Markdown(elem_id="compare-verdict")
            with gr.Row():
                left = gr.Markdown(label="base", elem_id="compare-base")
                right = gr.Markdown(label="CQA", elem_id="compare-cqa")
            go.click(self.compare, [*shared.brief, tuned, shared.template, shared.alpha, shared.strength,
                                    *shared.sampler], [left, right, result], api_visibility="private",
                     api_name="compare_tab")   # not "compare": that is the JSON API's (page/api.py)
            stop.click(self.cancels.stop, None, None, queue=False, api_visibility="private")


def side(outs, variant, strength) -> str:
    """One side of the comparison: the draft so far with its live score, then its card (and notes)."""
    u = outs.get(variant)
    if u is None:
        return "*waiting for the base to finish…*" if variant in TUNED else ""
    r = score_json(u, variant, strength)
    if not u.done:
        return u.text + (f"\n\n---\n{card.live_markdown(r)}" if r else "")
    if r is None:
        return f"{u.text}\n\n---\n{u.notice}{notes_md(u.notes)}"
    return f"{u.text}\n\n---\n{card.card_markdown(r)}{notes_md(u.notes)}"


def verdict(outs, strength, tuned=CQA_LABEL) -> str:
    """Which of the two finished drafts scored higher, and by how much (bits/token)."""
    done = {v: outs[v] for v in (BASE_LABEL, tuned) if v in outs and outs[v].done}
    if len(done) < 2:
        return ""
    if any(u.result is None for u in done.values()):
        return "One of the drafts has no scored passage: no comparison."
    a = score_json(done[BASE_LABEL], BASE_LABEL, strength)
    b = score_json(done[tuned], tuned, strength)
    return card.comparison_markdown(a, b, (BASE_LABEL, tuned))
