"""The Score tab: paste one or two versions of a text and see how much the brief explains each.

    python app.py      # the third tab; /score (page/api.py) gives the same numbers as JSON
"""
from __future__ import annotations

import gradio as gr

from assistant import card
from assistant.history import History
from assistant.pool import DEFAULT_MAX_TOKENS, BASE_LABEL
from assistant.revise import Version
from assistant.sampler import Sampler

from .plumbing import BRIEF_FIELDS, Cancels, brief, check_text, user_errors
from .revise import CLICK_CSS, CLICK_JS, Reviser, View, new_version


class ScoreTab:
    def __init__(self, backend, history: History | None = None, cancels: Cancels | None = None):
        self.backend = backend
        self.history = history or History()   # version A's draft id: its alternatives, rewrites, weak spots
        self.cancels = cancels or Cancels()

    @user_errors
    def score(self, *values):
        """Version A's card, tokens and plot; B's card and tokens, and which scored higher, when B is given; the
        record of A (its draft id) for the revision tools."""
        n = len(BRIEF_FIELDS)
        b = brief(*values[:n])
        variant, template, text_a, text_b = values[n:n + 4]
        check_text({"Version A": text_a, "Version B": text_b})
        scored = self.backend.scored(b, text_a, variant=variant, template=template)
        a = scored.to_json()
        # a rewrite from a token of a pasted text writes with the model's default settings, unguided
        sampler = Sampler(max_tokens=DEFAULT_MAX_TOKENS.get(variant, DEFAULT_MAX_TOKENS[BASE_LABEL]))
        key = new_version(self.history, Version(b, scored.text, None, scored, variant, 1.0, template, sampler))
        rec = {"draft_id": key, "brief": b.to_dict(), "draft": scored.text, "ids": None, "score": a}
        outs_a = (card.card_markdown(a, "Version A"), card.tokens_html(a), card.surprisal_figure(a, "Version A"))
        if not (text_b or "").strip():
            return (*outs_a, "", "", "Paste a second version as B to compare.", rec)
        s_b = self.backend.score(b, text_b, variant=variant, template=template)
        return (*outs_a, card.card_markdown(s_b, "Version B"), card.tokens_html(s_b), card.comparison_markdown(a, s_b),
                rec)

    def layout(self) -> None:
        variants = self.backend.variants()
        rec_a = gr.State({})
        with gr.Tab("Score", elem_id="score-tab"):
            with gr.Row():
                with gr.Column():
                    brief_in = [gr.Textbox(label=f.replace("_", " ").capitalize()) for f in BRIEF_FIELDS]
                    model = gr.Radio(variants, value=variants[0], label="Model")
                    template = gr.Radio(["chat", "plain"], value="chat", label="Prompt template")
                    text_a = gr.Textbox(label="Version A", lines=6)
                    text_b = gr.Textbox(label="Version B (optional)", lines=6)
                    go = gr.Button("Score", variant="primary")
                with gr.Column():
                    verdict = gr.Markdown(elem_id="score-verdict")
                    card_a, tokens_a = gr.Markdown(elem_id="score-card-a"), gr.HTML(elem_id="token-view-a",
                                                                                     js_on_load=CLICK_JS,
                                                                                     css_template=CLICK_CSS)
                    plot_a = gr.Plot()
                    Reviser(self.backend, self.history, self.cancels).layout(
                        "score", View(text_a, verdict, card_a, tokens_a, plot_a, rec_a))
                    card_b, tokens_b = gr.Markdown(elem_id="score-card-b"), gr.HTML(elem_id="token-view-b")
            go.click(self.score, [*brief_in, model, template, text_a, text_b],
                     [card_a, tokens_a, plot_a, card_b, tokens_b, verdict, rec_a], api_visibility="private",
                     api_name="score_tab")   # not "score": that is the JSON API's (page/api.py)
