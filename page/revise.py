"""The revision tools under a tab's coloured tokens: click a token for its alternatives, rewrite from it, Undo;
the weak sentences with a reason, Suggest rewrites of one, Insert a suggestion (the whole text re-scored).

    python app.py      # Write tab: under the draft; Score tab: under version A

`Reviser(backend, history, cancels).layout(prefix, view)` builds the panel inside an open tab and wires it to
the tab's `View` (its text box, notice, card, tokens, plot and record state). The record holds `draft_id`, a
key into the shared `assistant.history.History`, where each version (`revise.Version`) keeps the text, its
tokens, its score with the alternatives' rows, and the settings that wrote it: a rewrite uses the same.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gradio as gr

from assistant import card, weakspots
from assistant.errors import BadInput
from assistant.history import History
from assistant.pool import TUNED
from assistant.revise import Version

from .plumbing import Cancels, score_json, user_errors

# Clicking a token sends its position (the data-t attribute card.tokens_html writes) to the server.
CLICK_JS = ("element.addEventListener('click', (e) => { const t = e.target.closest('.tok');"
            " if (!t || t.dataset.t === undefined) return;"
            " element.querySelectorAll('.tok-picked').forEach((x) => x.classList.remove('tok-picked'));"
            " t.classList.add('tok-picked'); trigger('click', {position: Number(t.dataset.t)}); });")
CLICK_CSS = ".tok-picked { outline: 2px solid #1f4e8c; outline-offset: 1px; }"
SORTS = {"probability under the brief": "p", "i (bits the brief explains)": "i"}
N_SUGGESTIONS = 3


@dataclass
class View:
    """A tab's components that show one text and its score."""
    text: gr.components.Component
    notice: gr.components.Component
    card: gr.components.Component
    tokens: gr.HTML
    plot: gr.components.Component
    record: gr.State


def new_version(history: History, version: Version) -> str | None:
    """A draft id for a freshly written or scored text (None when nothing was scored)."""
    return history.new(version) if version.result is not None else None


def alt_label(k: int, a: dict) -> str:
    """One alternative as a line of the panel.

    >>> alt_label(2, {"text": " lamp", "p": 0.25, "p0": 0.0625, "i": 2.0, "class_words": "calibrated surprise",
    ...               "copies": True, "written": False})
    "2. ' lamp' · p(x|Y) 25.0 % · p(x) 6.2 % · i +2.00 bits · calibrated surprise · copies the brief"
    >>> _pct(0.000123), _pct(0.0), _pct(1e-9), _pct(0.009996)
    ('0.012 %', '0 %', '< 0.001 %', '1.0 %')
    """
    p0 = "?" if a["p0"] is None else _pct(a["p0"])
    i = "?" if a["i"] is None else f"{a['i']:+.2f} bits"
    return (f"{k}. {a['text']!r} · p(x|Y) {_pct(a['p'])} · p(x) {p0} · i {i} · {a['class_words']}"
            + (" · copies the brief" if a["copies"] else "") + (" · written" if a["written"] else ""))


def _pct(p: float) -> str:
    """A probability as a percentage with two significant digits below 1 % (a rare word's p(x) is the point)."""
    v = 100 * p
    if v == 0:
        return "0 %"
    # from 0.995 % up two significant digits would round to a bare "1": one decimal, like every value above
    return f"{v:.1f} %" if v >= 0.995 else f"{v:.2g} %" if v >= 0.001 else "< 0.001 %"


def _index(label) -> int:
    if not label:
        raise BadInput("choose one first")
    return int(str(label).split(".", 1)[0]) - 1


class Reviser:
    def __init__(self, backend, history: History, cancels: Cancels):
        self.backend, self.history, self.cancels = backend, history, cancels

    def _version(self, record) -> tuple[str, Version]:
        key = (record or {}).get("draft_id")
        if not key:
            raise BadInput("There is no scored text yet: write a draft or score a text first.")
        return key, self.history.current(key)

    # ---- alternatives --------------------------------------------------------------------
    @user_errors
    def pick(self, record, sort_label, evt: gr.EventData):
        return self._panel(record, getattr(evt, "position", None), sort_label)

    @user_errors
    def resort(self, record, position, sort_label):
        if position is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return self._panel(record, position, sort_label)

    def _panel(self, record, position, sort_label):
        _, v = self._version(record)
        rows = self.backend.alternatives(v.result, position, variant=v.variant, strength=v.strength, ids=v.ids,
                                         sort=SORTS.get(sort_label, "p"))
        written = next(r for r in rows if r["written"])
        by = sort_label if sort_label in SORTS else next(iter(SORTS))
        head = (f"**Token {position}: {written['text']!r}.** What could stand here instead, under the brief "
                f"(p(x|Y)), without it (p(x)), and i = log2 p(x|Y) − log2 p(x): how much the brief explains the "
                f"choice; sorted by {by}. Choose one and *Rewrite from here*.")
        labels = [alt_label(k, r) for k, r in enumerate(rows, 1)]
        return head, gr.update(choices=labels, value=None, visible=True), rows, position

    # ---- rewrite and undo ----------------------------------------------------------------
    @user_errors
    def rewrite(self, request: gr.Request, record, position, choice, rows):
        key, v = self._version(record)
        if position is None or not rows:
            raise BadInput("Click a token of the text first, then choose an alternative.")
        token = rows[_index(choice)]["token"]
        ids = v.ids if v.ids is not None else self.backend.tokenize(v.text, variant=v.variant, strength=v.strength)
        with self.cancels.running(request) as cancel:
            for u in self.backend.rewrite(v.brief, v.sampler, ids, position, token, variant=v.variant,
                                          strength=v.strength, template=v.template, guidance=v.guidance,
                                          cancel=cancel):
                if not u.done:
                    r = score_json(u, v.variant, v.strength)
                    live = (card.live_markdown(r), card.tokens_html(r)) if r else (gr.skip(), gr.skip())
                    yield u.text, "Rewriting from the chosen token…", *live, gr.skip(), gr.skip(), gr.skip()
                    continue
                if u.result is None:
                    raise BadInput("The rewrite produced no scored text: try another alternative or Undo.")
                new = dataclasses.replace(v, text=u.text, ids=u.ids, result=u.result, notice=u.notice)
                self.history.push(key, new)
                note = (f"Rewritten from token {position} with {rows[_index(choice)]['text']!r} (same model and "
                        f"settings). {u.notice}").strip()
                yield (*self._show(record, new, note), gr.update(choices=[], value=None))

    @user_errors
    def undo(self, record):
        key, _ = self._version(record)
        v = self.history.undo(key)
        return (*self._show(record, v, "Undone: the previous version is back."), gr.update(choices=[], value=None))

    def _show(self, record, v: Version, note: str):
        """A version's outputs: text, notice, card, tokens, plot, record."""
        r = v.result.to_json()
        r["guidance"] = v.guidance
        r["cqa_strength"] = v.strength if v.variant in TUNED else None
        rec = {**record, "draft": v.text, "ids": v.ids, "score": r}
        return v.text, note, card.card_markdown(r), card.tokens_html(r), card.surprisal_figure(r), rec

    # ---- weak spots and suggestions ------------------------------------------------------
    def reset(self, record):
        """A new text or version: the panel's alternatives belong to the old one."""
        return "", gr.update(choices=[], value=None, visible=False), [], None

    @user_errors
    def weak_spots(self, record):
        if not (record or {}).get("draft_id"):
            return gr.skip(), "", gr.update(choices=[], value=None, visible=False), []
        _, v = self._version(record)
        sentences = weakspots.from_scored(v.result)
        flagged = weakspots.weak(sentences)
        r = (record.get("score") or v.result.to_json())
        spans = [(s.first_token, s.last_token, s.kind) for s in flagged]
        if not flagged:
            return card.tokens_html(r, spans), ("No weak sentence: none falls below the text's I per token in its "
                                                "lowest third (or the text is too short to judge)."), \
                gr.update(choices=[], value=None, visible=False), []
        rows = [s.to_json() for s in flagged]
        md = "**Weak spots** (orange line in the text), lowest I per token first:\n\n" + "\n".join(
            f"{k}. *{s.text}*  \n   {s.reason}" for k, s in enumerate(flagged, 1))
        labels = [f"{k}. [{weakspots.KINDS[s.kind]}] {s.text}" for k, s in enumerate(flagged, 1)]
        return card.tokens_html(r, spans), md, gr.update(choices=labels, value=labels[0], visible=True), rows

    @user_errors
    def suggest(self, record, choice, weak_rows):
        _, v = self._version(record)
        if not weak_rows or not choice:
            raise BadInput("Choose a weak sentence first.")
        s = weak_rows[_index(choice)]
        found = self.backend.suggest(v.brief, v.text, s["start"], s["end"], v.sampler, variant=v.variant,
                                     strength=v.strength, template=v.template, n=N_SUGGESTIONS,
                                     before=v.result.to_json())
        if not found:
            return gr.update(choices=[], value=None, visible=False), [], "The model gave no usable rewrite: try again."
        labels = [f"{k}. {x['sentence']} · ΔI {x['delta_I_per_token']:+.3f} bits/token (uncopied "
                  f"{x['delta_I_uncopied_per_token']:+.3f})" + (" · restates the brief" if x["restates"] else "")
                  for k, x in enumerate(found, 1)]
        head = ("Rewrites of the sentence by the same model, ranked by I over uncopied tokens (drafts restating the "
                "brief last); ΔI: the whole text's change. Choose one and *Insert*.")
        return gr.update(choices=labels, value=labels[0], visible=True), found, head

    @user_errors
    def insert(self, record, choice, found):
        key, v = self._version(record)
        if not found or not choice:
            raise BadInput("Choose a suggestion first (Suggest on a weak sentence).")
        x = found[_index(choice)]
        result = self.backend.scored(v.brief, x["text"], variant=v.variant, strength=v.strength, template=v.template)
        new = dataclasses.replace(v, text=result.text, ids=None, result=result, notice="")
        self.history.push(key, new)
        note = f"Inserted: *{x['sentence']}*. The whole text was scored again; Undo brings the previous version back."
        return (*self._show(record, new, note), gr.update(choices=[], value=None, visible=False), [])

    # ---- layout ----------------------------------------------------------------------------
    def layout(self, prefix: str, view: View) -> None:
        with gr.Accordion("Revise: alternatives at a token, weak sentences", open=True, elem_id=f"{prefix}-revise"):
            gr.Markdown("Click a token of the coloured text to see what else could stand there.")
            head = gr.Markdown(elem_id=f"{prefix}-alt-head")
            with gr.Row():
                sort = gr.Radio(list(SORTS), value=next(iter(SORTS)), label="Sort alternatives by",
                                elem_id=f"{prefix}-alt-sort", scale=1)
                choice = gr.Radio([], label="Alternatives", visible=False, elem_id=f"{prefix}-alternatives", scale=3)
            with gr.Row():
                rewrite_btn = gr.Button("Rewrite from here", elem_id=f"{prefix}-rewrite")
                undo_btn = gr.Button("Undo", elem_id=f"{prefix}-undo")
            weak_md = gr.Markdown(elem_id=f"{prefix}-weak")
            weak_choice = gr.Radio([], label="Weak sentence", visible=False, elem_id=f"{prefix}-weak-choice")
            suggest_btn = gr.Button("Suggest", elem_id=f"{prefix}-suggest")
            sugg_head = gr.Markdown(elem_id=f"{prefix}-sugg-head")
            sugg = gr.Radio([], label="Suggestions", visible=False, elem_id=f"{prefix}-suggestions")
            insert_btn = gr.Button("Insert", elem_id=f"{prefix}-insert")
        rows, position, weak_rows, found = gr.State([]), gr.State(None), gr.State([]), gr.State([])
        def private(name):   # named, so they never take the JSON API's names (page/api_revise.py)
            return dict(api_visibility="private", api_name=f"_{prefix}_{name}")
        shown = [view.text, view.notice, view.card, view.tokens, view.plot, view.record]
        view.tokens.click(self.pick, [view.record, sort], [head, choice, rows, position], **private("pick"))
        sort.change(self.resort, [view.record, position, sort], [head, choice, rows, position], **private("sort"))
        rewrite_btn.click(self.rewrite, [view.record, position, choice, rows], shown + [choice], **private("rewrite"))
        undo_btn.click(self.undo, view.record, shown + [choice], **private("undo"))
        view.record.change(self.reset, view.record, [head, choice, rows, position], **private("reset"))
        view.record.change(self.weak_spots, view.record, [view.tokens, weak_md, weak_choice, weak_rows],
                           **private("weak"))
        suggest_btn.click(self.suggest, [view.record, weak_choice, weak_rows], [sugg, found, sugg_head],
                          **private("suggest"))
        insert_btn.click(self.insert, [view.record, sugg, found], shown + [sugg, found], **private("insert"))
