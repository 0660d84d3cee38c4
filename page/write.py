"""The Write tab: a brief in, drafts streamed with their live score, best of N ranked, Continue, Export.

    python app.py      # the first tab

`WriteTab(backend, cancels, model_name).layout()` builds the tab inside an open gr.Blocks and returns the
inputs the Compare tab shares (the brief, template, guidance, strength and sampler controls).
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from assistant import atomic, card, guidance, ranking, writer
from assistant.brief import Brief
from assistant.defaults import CURRENT as DEFAULTS
from assistant.errors import BadInput
from assistant.history import History
from assistant.pool import BASE_LABEL, CQA_LABEL, DEFAULT_MAX_TOKENS, PASSAGE_LABEL, TUNED, writes_notes
from assistant.revise import Version
from assistant.sampler import Sampler

from .plumbing import (BRIEF_FIELDS, MAX_STRENGTH, SAMPLER_FIELDS, Cancels, brief, check_text, n_drafts,
                       notes_md, score_json, settings, user_errors)
from .revise import CLICK_CSS, CLICK_JS, Reviser, View, new_version

DEFAULT_VARIANT = {"base": BASE_LABEL, "cqa": CQA_LABEL, "cqa-passage": PASSAGE_LABEL}[DEFAULTS.model]   # the grid's


@dataclass
class Shared:
    """The Write tab's controls that the Compare tab reads too."""
    brief: list
    template: gr.Radio
    alpha: gr.Slider
    strength: gr.Slider
    sampler: list


class WriteTab:
    def __init__(self, backend, cancels: Cancels, model_name: str, history: History | None = None):
        self.backend = backend
        self.cancels = cancels
        self.model_name = model_name     # what the export calls the model: the catalog name or the file
        self.history = history or History()   # draft ids for the revision tools (page/revise.py)

    @user_errors
    def generate(self, request: gr.Request, *values, continuing: bool = False):
        """Stream a draft, then its score. `request` comes first: Gradio fills in a gr.Request only for
        positional parameters before *values, and Stop finds this draft by the request's session."""
        n = len(BRIEF_FIELDS)
        b = brief(*values[:n])
        variant, template, alpha, strength, drafts, reason_first, draft_text, last = values[n: n + 8]
        check_text({"draft": draft_text})
        sampler, alpha, strength = settings(dict(zip(SAMPLER_FIELDS, values[n + 8:])), alpha, strength)
        drafts = n_drafts(drafts)
        notes = writes_notes(variant, reason_first)
        with self.cancels.running(request) as cancel:
            if drafts > 1 and not continuing:
                yield from self._many(b, variant, template, sampler, cancel, alpha, strength, drafts, notes)
            else:
                for out in self._one(b, variant, template, draft_text, last, sampler, cancel, continuing, alpha,
                                     strength, notes):
                    yield *out, gr.update(choices=[], value=None, visible=False), []

    def continue_draft(self, request: gr.Request, *values):
        """Continue: a method, not functools.partial, so Gradio sees the gr.Request annotation."""
        yield from self.generate(request, *values, continuing=True)

    def _one(self, b, variant, template, draft_text, last, sampler, cancel, continuing, alpha, strength, notes):
        prefix_ids = None
        if continuing:
            if not (draft_text or "").strip():
                raise BadInput("There is no draft to continue: generate one first.")
            same = bool(last and last.get("ids")) and last.get("draft") == draft_text and \
                last.get("variant") == variant and last.get("template") == template and \
                last.get("brief") == b.to_dict()
            prefix_ids = last["ids"] if same else self.backend.tokenize(draft_text, variant=variant,
                                                                        strength=strength)
        for u in self.backend.write(b, sampler, variant=variant, strength=strength, template=template,
                                    cancel=cancel, prefix_ids=prefix_ids, guidance=alpha, notes=notes):
            if not u.done:
                r = score_json(u, variant, strength)
                live = (card.live_markdown(r), card.tokens_html(r)) if r else (gr.skip(), gr.skip())
                yield u.text, u.notice, *live, gr.skip(), gr.skip()
            else:
                rec = self._record(b, u, variant, sampler, template, alpha, strength, notes)
                yield (u.text, u.notice + (" Stopped." if u.stop_reason == "cancelled" else "") + notes_md(u.notes),
                       *_outputs(rec), rec)

    def _many(self, b, variant, template, sampler, cancel, alpha, strength, n, notes):
        """Best of N: each draft streams with its live score and a progress line; then all, ranked, best shown."""
        for u in self.backend.best_of(b, sampler, n, variant=variant, strength=strength, template=template,
                                      cancel=cancel, guidance=alpha, notes=notes):
            if not u.done:
                r = score_json(u, variant, strength)
                live = (card.live_markdown(r), card.tokens_html(r)) if r else (gr.skip(), gr.skip())
                yield (u.text, f"**Writing {u.progress}.** {u.notice}".strip(), *live, gr.skip(), gr.skip(),
                       gr.skip(), gr.skip())
                continue
            records = []
            for x in u.ranked:
                rec = self._record(b, x, variant, dataclasses.replace(sampler, seed=x.seed), template, alpha,
                                   strength, notes)
                rec["seed"], rec["notice"] = x.seed, x.notice + notes_md(x.notes)
                records.append(rec)
            labels = [_rank_label(k, rec, sampler.max_tokens) for k, rec in enumerate(records, 1)]
            best = records[0]
            head = (f"**{u.progress}** (ranked by I over uncopied tokens per budget token; drafts restating the "
                    "brief go last). Open any below.")
            yield (best["draft"], head + " " + best["notice"], *_outputs(best), best,
                   gr.update(choices=labels, value=labels[0], visible=True), records)

    def _record(self, b: Brief, update, variant: str, sampler: Sampler, template: str, alpha: float,
                strength: float, notes: bool = True) -> dict:
        version = Version(b, update.text, update.ids, update.result, variant, strength, template, sampler, alpha, notes)
        return {"draft_id": new_version(self.history, version), "brief": b.to_dict(), "draft": update.text,
                "ids": update.ids,
                "score": score_json(update, variant, strength), "model": f"{self.model_name} ({variant})",
                "variant": variant, "sampler": sampler.to_dict(), "template": template, "notes": update.notes,
                "guidance": alpha, "cqa_strength": strength if variant in TUNED else None}

    def layout(self) -> Shared:
        variants = self.backend.variants()
        last = gr.State({})
        with gr.Tab("Write", elem_id="write-tab"):
            with gr.Row():
                with gr.Column(scale=1):
                    brief_in = [gr.Textbox(label="Task", placeholder="Write the opening paragraph of a ghost story"),
                                gr.Textbox(label="Intent", placeholder="What the reader should feel or realise"),
                                gr.Textbox(label="Audience", placeholder="Who reads it"),
                                gr.Textbox(label="World", lines=3, placeholder="Facts of the story world"),
                                gr.Textbox(label="Text so far", lines=4, placeholder="The piece so far (optional)")]
                    with gr.Row():
                        start = DEFAULT_VARIANT if DEFAULT_VARIANT in variants else variants[0]
                        model = gr.Radio(variants, value=start, label="Model")
                        alpha = gr.Slider(0, guidance.MAX_ALPHA, DEFAULTS.guidance, step=0.05, label="Brief guidance",
                                          info="0 = plain sampling; higher leans on words the brief explains "
                                               "(too high and drafts restate the brief)", elem_id="guidance")
                        strength = gr.Slider(0, MAX_STRENGTH, 1, step=0.05, label="CQA strength",
                                             info="the tuned adapter's scale: 0 = the base, 1 = as trained",
                                             visible=start in TUNED, elem_id="cqa-strength")
                    with gr.Row():
                        drafts = gr.Slider(1, writer.MAX_DRAFTS, DEFAULTS.drafts, step=1, label="Drafts",
                                           info="write N drafts (seeds s, s+1, ...) and show them ranked",
                                           elem_id="n-drafts")
                        reason_first = gr.Checkbox(DEFAULTS.reason_first, label="Reason first",
                                                   visible=start == CQA_LABEL,
                                                   info="CQA writes its notes before the passage; off: the "
                                                        "passage at once", elem_id="reason-first")
                    template = gr.Radio(["chat", "plain"], value="chat", label="Prompt template")
                    with gr.Accordion("Sampler", open=False):
                        sampler_in = [gr.Slider(0, 2, 0.8, step=0.05, label="Temperature"),
                                      gr.Slider(0.01, 1, 0.95, step=0.01, label="Top p"),
                                      gr.Slider(0, 200, 40, step=1, label="Top k"),
                                      gr.Slider(0, 0.99, 0.05, step=0.01, label="Min p"),
                                      gr.Slider(0.5, 2, 1.1, step=0.01, label="Repeat penalty"),
                                      gr.Number(0, precision=0, label="Seed"),
                                      gr.Slider(1, 1024, DEFAULT_MAX_TOKENS[start], step=1, label="Max tokens"),
                                      gr.Textbox("", label="Stop strings (separate with |)")]
                    with gr.Row():
                        gen_btn = gr.Button("Generate", variant="primary")
                        stop_btn = gr.Button("Stop")
                        regen_btn = gr.Button("Regenerate")
                        cont_btn = gr.Button("Continue")
                with gr.Column(scale=1):
                    notice = gr.Markdown(elem_id="notice")
                    ranked = gr.Radio([], label="Drafts, best first", visible=False, elem_id="ranked")
                    batch = gr.State([])
                    draft = gr.Textbox(label="Draft", lines=10, interactive=True, elem_id="draft")
                    card_md = gr.Markdown(elem_id="score-card")
                    tokens = gr.HTML(elem_id="token-view", js_on_load=CLICK_JS, css_template=CLICK_CSS)
                    plot = gr.Plot(label="Surprisal per token")
                    Reviser(self.backend, self.history, self.cancels).layout(
                        "write", View(draft, notice, card_md, tokens, plot, last))
                    with gr.Row():
                        md_btn = gr.Button("Export Markdown")
                        json_btn = gr.Button("Export JSON")
                    export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
            private = dict(api_visibility="private")
            model.change(max_tokens_for, [model, sampler_in[6]], sampler_in[6], api_name="_max_tokens_for", **private)
            model.change(lambda v: (gr.update(visible=v in TUNED), gr.update(visible=v == CQA_LABEL)), model,
                         [strength, reason_first], **private)
            ins = [*brief_in, model, template, alpha, strength, drafts, reason_first, draft, last, *sampler_in]
            outs = [draft, notice, card_md, tokens, plot, last, ranked, batch]
            ranked.input(open_ranked, [ranked, batch], outs[:6], **private)
            gen_btn.click(self.generate, ins, outs, **private)
            regen_btn.click(lambda s: int(s or 0) + 1, sampler_in[5], sampler_in[5], **private).then(
                self.generate, ins, outs, **private)
            cont_btn.click(self.continue_draft, ins, outs, **private)
            stop_btn.click(self.cancels.stop, None, None, queue=False, **private)
            md_btn.click(lambda r: export(r, "md"), last, export_file, **private)
            json_btn.click(lambda r: export(r, "json"), last, export_file, **private)
        return Shared(brief_in, template, alpha, strength, sampler_in)


def open_ranked(choice, records):
    """Show one of the ranked drafts: its text, card, tokens and plot."""
    if not choice or not records:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    rec = records[int(choice.split(".", 1)[0]) - 1]
    return rec["draft"], rec["notice"], *_outputs(rec), rec


@user_errors
def export(record: dict, kind: str) -> str:
    """The last draft as a Markdown or JSON file to download (a fresh temp folder per export)."""
    if not record or not record.get("score"):
        raise BadInput("Nothing to export yet: generate a draft first.")
    body = card.export_markdown(record) if kind == "md" else card.export_json(
        {k: v for k, v in record.items() if k not in ("ids", "logprobs")})
    return str(atomic.write_text(Path(tempfile.mkdtemp(prefix="cqa-export-")) / f"draft.{kind}", body))


def max_tokens_for(variant: str, current):
    """Switching model moves Max tokens to that model's default, unless the user chose another value."""
    if current in DEFAULT_MAX_TOKENS.values() and variant in DEFAULT_MAX_TOKENS:
        return DEFAULT_MAX_TOKENS[variant]
    return gr.skip()


def _outputs(record: dict):
    r = record.get("score")
    if not r:
        return "", "", None
    return card.card_markdown(r), card.tokens_html(r), card.surprisal_figure(r)


def _rank_label(k: int, rec: dict, budget: int) -> str:
    r = rec.get("score")
    if not r:
        return f"{k}. seed {rec['seed']}: no scored passage"
    flag = " · restates the brief" if ranking.restates(r) else ""
    return (f"{k}. seed {rec['seed']}: {ranking.rank_score(r, budget):+.3f} bits/budget token uncopied · "
            f"overlap {100 * (r.get('brief_overlap') or 0):.0f}% · {r.get('n_words', 0)} words{flag}")
