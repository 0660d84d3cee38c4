"""The CQA writing assistant: a Gradio page over the assistant/ core.

    python app.py                      # http://127.0.0.1:7860, embedded SmolLM2-135M-Instruct
    python app.py --port 8000 --threads 2 --model path/to/model.gguf

Flags and environment variables: --host/CQA_HOST, --port/CQA_PORT, --model/CQA_MODEL,
--adapter/CQA_ADAPTER, --passage-adapter/CQA_PASSAGE_ADAPTER, --threads/CQA_THREADS, --n-ctx/CQA_N_CTX. UI only: every handler
calls the core (assistant.writer) and turns its errors into gr.Error.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import os
import tempfile
import threading
from pathlib import Path

import gradio as gr

from assistant import card, catalog, guidance
from assistant.brief import Brief, BriefError
from assistant.engine import EngineError
from assistant.backend import LocalBackend
from assistant.defaults import CURRENT as DEFAULTS
from assistant.pool import BASE_LABEL, CQA_LABEL, DEFAULT_MAX_TOKENS, PASSAGE_LABEL, TUNED, Pool, PoolConfig, writes_notes
from assistant.sampler import Sampler, SamplerError
from assistant import writer

log = logging.getLogger("cqa.app")
USER_ERRORS = (BriefError, SamplerError, EngineError, ValueError, catalog.UnknownModel, catalog.ModelUnavailable)
DEFAULT_VARIANT = {"base": BASE_LABEL, "cqa": CQA_LABEL, "cqa-passage": PASSAGE_LABEL}[DEFAULTS.model]   # set by the grid (assistant/defaults.py)
MAX_STRENGTH = 2.0     # CQA strength: the LoRA scale, 0 (the base) to 2
BRIEF_FIELDS = ("task", "intent", "audience", "world", "text_so_far")
SAMPLER_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "max_tokens", "stop")
INT_FIELDS = ("top_k", "seed", "max_tokens")
POOL = Pool()
BACKEND = LocalBackend(POOL)      # in-process llama.cpp; `--ray` swaps in assistant.ray_backend.RayBackend
ANNOTATIONS: Path | None = None   # the corpus file the Annotate tab appends to (--annotations); None hides it
CANCEL: dict[str, threading.Event] = {}


@contextlib.contextmanager
def user_error_messages():
    """Library errors become gr.Error (a message, no traceback); the server keeps serving."""
    try:
        yield
    except gr.Error:
        raise
    except USER_ERRORS as e:
        raise gr.Error(str(e)) from None
    except Exception as e:  # noqa: BLE001 - last line of defence for one request
        log.exception("request failed")
        raise gr.Error(f"Something went wrong: {type(e).__name__}: {e}") from None


def user_errors(fn):
    """Decorate a handler, streaming or not, with user_error_messages()."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*a, **k):
            with user_error_messages():
                yield from fn(*a, **k)
        return streaming

    @functools.wraps(fn)
    def plain(*a, **k):
        with user_error_messages():
            return fn(*a, **k)
    return plain


def _sampler(values: dict) -> Sampler:
    """UI/API values -> Sampler. Sliders send whole numbers as floats (40.0): those become ints;
    anything else goes to Sampler as it came, so it reports every bad value in one message."""
    v = dict(values)
    stop = v.pop("stop", "") or ""
    if isinstance(stop, str):
        stops = tuple(_unescape(s) for s in stop.split("|") if s)
    elif isinstance(stop, (list, tuple)):
        stops = tuple(stop)
    else:
        raise SamplerError(f"stop: must be text (strings separated by |), got {type(stop).__name__}")
    for k in INT_FIELDS:
        if isinstance(v.get(k), float) and v[k].is_integer():
            v[k] = int(v[k])
    return Sampler(**v, stop=stops)


def _settings(values: dict, alpha, strength) -> tuple[Sampler, float, float]:
    """Sampler values, brief guidance and CQA strength, checked together: every problem in one message."""
    problems = guidance.check(alpha)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        problems.append(f"CQA strength: must be a number, got {strength!r}")
    elif not 0 <= strength <= MAX_STRENGTH:
        problems.append(f"CQA strength {strength} must be between 0 and {MAX_STRENGTH:g}")
    try:
        sampler = _sampler(values)
    except SamplerError as e:
        problems = [str(e)] + problems
        sampler = None
    if problems:
        raise SamplerError("; ".join(problems))
    return sampler, float(alpha), float(strength)


def _unescape(stop: str) -> str:
    """Let a stop string be typed as \\n or \\t; other characters (é, a lone backslash) stay as typed."""
    return stop.replace("\\n", "\n").replace("\\t", "\t")


def _check_text(fields: dict) -> None:
    """A pasted lone surrogate cannot become UTF-8: say which field, before the model sees it."""
    problems = []
    for name, value in fields.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                problems.append(f"{name} has an invalid character (a lone surrogate) at position {e.start}")
    if problems:
        raise BriefError("; ".join(problems) + ": paste the text again as plain UTF-8")


def _brief(*values) -> Brief:
    _check_text(dict(zip(BRIEF_FIELDS, values)))
    return Brief(*values)


def _score_json(update, variant: str, strength: float) -> dict | None:
    if not update.result:
        return None
    r = update.result.to_json()
    r["guidance"] = update.guidance
    r["cqa_strength"] = strength if variant in TUNED else None
    return r


def _record(brief: Brief, update, variant: str, sampler: Sampler, template: str, alpha: float, strength: float) -> dict:
    return {"brief": brief.to_dict(), "draft": update.text, "ids": update.ids,
            "score": _score_json(update, variant, strength),
            "model": f"{POOL.config.model or catalog.DEFAULT_MODEL} ({variant})",
            "variant": variant, "sampler": sampler.to_dict(), "template": template, "notes": update.notes,
            "guidance": alpha, "cqa_strength": strength if variant in TUNED else None}


def _outputs(record: dict):
    r = record.get("score")
    if not r:
        return "", "", None
    return card.card_markdown(r), card.tokens_html(r), card.surprisal_figure(r)


def _stream(brief, variant, template, sampler, cancel, prefix_ids=None, alpha=0.0, strength=1.0, notes=True):
    yield from BACKEND.write(brief, sampler, variant=variant, strength=strength, template=template, cancel=cancel,
                             prefix_ids=prefix_ids, guidance=alpha, notes=notes)


@user_errors
def generate(request: gr.Request, *values, continuing: bool = False):
    """Stream a draft, then its score. `request` comes first: Gradio fills in a gr.Request only for
    positional parameters before *values, and Stop finds this draft by the request's session."""
    n = len(BRIEF_FIELDS)
    brief = _brief(*values[:n])
    variant, template, alpha, strength, n_drafts, reason_first, draft_text, last = values[n: n + 8]
    _check_text({"draft": draft_text})
    sampler, alpha, strength = _settings(dict(zip(SAMPLER_FIELDS, values[n + 8:])), alpha, strength)
    n_drafts = _n_drafts(n_drafts)
    notes = writes_notes(variant, reason_first)
    key = request.session_hash if request else "local"
    CANCEL[key] = cancel = threading.Event()
    try:
        if n_drafts > 1 and not continuing:
            yield from _generate_many(brief, variant, template, sampler, cancel, alpha, strength, n_drafts, notes)
        else:
            for out in _generate(brief, variant, template, draft_text, last, sampler, cancel, continuing, alpha,
                                 strength, notes):
                yield *out, gr.update(choices=[], value=None, visible=False), []
    finally:
        if CANCEL.get(key) is cancel:  # one Event per session while it writes, not one forever
            del CANCEL[key]


def _n_drafts(value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= writer.MAX_DRAFTS:
        raise SamplerError(f"drafts: {value!r} must be a whole number from 1 to {writer.MAX_DRAFTS}")
    return value


def _rank_label(k: int, rec: dict, budget: int) -> str:
    from assistant import ranking
    r = rec.get("score")
    if not r:
        return f"{k}. seed {rec['seed']}: no scored passage"
    flag = " · restates the brief" if ranking.restates(r) else ""
    return (f"{k}. seed {rec['seed']}: {ranking.rank_score(r, budget):+.3f} bits/budget token uncopied · "
            f"overlap {100 * (r.get('brief_overlap') or 0):.0f}% · {r.get('n_words', 0)} words{flag}")


def _generate_many(brief, variant, template, sampler, cancel, alpha, strength, n, notes):
    """Best of N: each draft streams with its live score and a progress line; then all, ranked, best shown."""
    for u in BACKEND.best_of(brief, sampler, n, variant=variant, strength=strength, template=template, cancel=cancel,
                             guidance=alpha, notes=notes):
        if not u.done:
            r = _score_json(u, variant, strength)
            live = (card.live_markdown(r), card.tokens_html(r)) if r else (gr.skip(), gr.skip())
            yield u.text, f"**Writing {u.progress}.** {u.notice}".strip(), *live, gr.skip(), gr.skip(), gr.skip(), gr.skip()
            continue
        records = []
        for x in u.ranked:
            rec = _record(brief, x, variant, dataclasses.replace(sampler, seed=x.seed), template, alpha, strength)
            rec["seed"], rec["notice"] = x.seed, x.notice + _notes_md(x.notes)
            records.append(rec)
        labels = [_rank_label(k, rec, sampler.max_tokens) for k, rec in enumerate(records, 1)]
        best = records[0]
        head = (f"**{u.progress}** (ranked by I over uncopied tokens per budget token; drafts restating the brief "
                "go last). Open any below.")
        yield (best["draft"], head + " " + best["notice"], *_outputs(best), best,
               gr.update(choices=labels, value=labels[0], visible=True), records)


def open_ranked(choice, records):
    """Show one of the ranked drafts: its text, card, tokens and plot."""
    if not choice or not records:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    k = int(choice.split(".", 1)[0]) - 1
    rec = records[k]
    return rec["draft"], rec["notice"], *_outputs(rec), rec


def _generate(brief, variant, template, draft_text, last, sampler, cancel, continuing, alpha, strength, notes=True):
    prefix_ids = None
    if continuing:
        if not (draft_text or "").strip():
            raise gr.Error("There is no draft to continue: generate one first.")
        same = bool(last and last.get("ids")) and last.get("draft") == draft_text and last.get("variant") == variant and \
            last.get("template") == template and last.get("brief") == brief.to_dict()
        prefix_ids = last["ids"] if same else BACKEND.tokenize(draft_text, variant=variant, strength=strength)
    for u in _stream(brief, variant, template, sampler, cancel, prefix_ids, alpha, strength, notes):
        if not u.done:
            r = _score_json(u, variant, strength)
            live = (card.live_markdown(r), card.tokens_html(r)) if r else (gr.skip(), gr.skip())
            yield u.text, u.notice, *live, gr.skip(), gr.skip()
        else:
            rec = _record(brief, u, variant, sampler, template, alpha, strength)
            yield (u.text, u.notice + (" Stopped." if u.stop_reason == "cancelled" else "") + _notes_md(u.notes),
                   *_outputs(rec), rec)


def _notes_md(notes: str) -> str:
    """A tuned model reasons before it writes: its notes, folded away under the draft's notice."""
    if not notes:
        return ""
    return f"\n\n<details><summary>The model's notes before the passage</summary>\n\n{notes}\n\n</details>"


def continue_draft(request: gr.Request, *values):
    """Continue: a plain function, not functools.partial, so Gradio sees the gr.Request annotation."""
    yield from generate(request, *values, continuing=True)


def stop(request: gr.Request = None):
    ev = CANCEL.get(request.session_hash if request else "local")
    if ev:
        ev.set()


def _check_tuned(tuned) -> None:
    if tuned not in TUNED:
        raise ValueError(f"unknown tuned model {tuned!r}: choose one of {list(TUNED)}")
    if tuned not in BACKEND.variants():
        raise gr.Error(f"No {tuned} adapter is installed: only the base can run.")


def _compare_stream(brief, template, sampler, alpha, strength, cancel=None, tuned=CQA_LABEL):
    """Base then a tuned model on the same brief, seed, guidance: {variant: latest Update} after every token."""
    _check_tuned(tuned)
    outs = {}
    for variant in (BASE_LABEL, tuned):
        for u in _stream(brief, variant, template, sampler, cancel, None, alpha, strength, writes_notes(variant)):
            if u.result is None and variant in outs and outs[variant].result is not None and not u.done:
                u.result = outs[variant].result   # keep the last live score on screen between two
            outs[variant] = u
            yield outs


@user_errors
def compare_tab(request: gr.Request, *values):
    n = len(BRIEF_FIELDS)
    brief = _brief(*values[:n])
    tuned, template, alpha, strength = values[n: n + 4]
    sampler, alpha, strength = _settings(dict(zip(SAMPLER_FIELDS, values[n + 4:])), alpha, strength)
    key = request.session_hash if request else "local"
    CANCEL[key] = cancel = threading.Event()
    try:
        for outs in _compare_stream(brief, template, sampler, alpha, strength, cancel, tuned):
            yield (*(_side(outs, v, strength) for v in (BASE_LABEL, tuned)), _verdict(outs, strength, tuned))
    finally:
        if CANCEL.get(key) is cancel:
            del CANCEL[key]


def _side(outs, variant, strength):
    u = outs.get(variant)
    if u is None:
        return "*waiting for the base to finish…*" if variant in TUNED else ""
    r = _score_json(u, variant, strength)
    if not u.done:
        return u.text + (f"\n\n---\n{card.live_markdown(r)}" if r else "")
    if r is None:
        return f"{u.text}\n\n---\n{u.notice}{_notes_md(u.notes)}"
    return f"{u.text}\n\n---\n{card.card_markdown(r)}{_notes_md(u.notes)}"


def _verdict(outs, strength, tuned=CQA_LABEL) -> str:
    """Which of the two finished drafts scored higher, and by how much (bits/token)."""
    done = {v: outs[v] for v in (BASE_LABEL, tuned) if v in outs and outs[v].done}
    if len(done) < 2:
        return ""
    if any(u.result is None for u in done.values()):
        return "One of the drafts has no scored passage: no comparison."
    a = _score_json(done[BASE_LABEL], BASE_LABEL, strength)
    b = _score_json(done[tuned], tuned, strength)
    return card.comparison_markdown(a, b, (BASE_LABEL, tuned))


@user_errors
def score_tab(*values):
    n = len(BRIEF_FIELDS)
    brief = _brief(*values[:n])
    variant, template, text_a, text_b = values[n:n + 4]
    _check_text({"Version A": text_a, "Version B": text_b})
    a = BACKEND.score(brief, text_a, variant=variant, template=template)
    outs_a = (card.card_markdown(a, "Version A"), card.tokens_html(a), card.surprisal_figure(a, "Version A"))
    if not (text_b or "").strip():
        return (*outs_a, "", "", "Paste a second version as B to compare.")
    b = BACKEND.score(brief, text_b, variant=variant, template=template)
    return (*outs_a, card.card_markdown(b, "Version B"), card.tokens_html(b), card.comparison_markdown(a, b))


@user_errors
def export(record: dict, kind: str):
    if not record or not record.get("score"):
        raise gr.Error("Nothing to export yet: generate a draft first.")
    body = card.export_markdown(record) if kind == "md" else card.export_json(
        {k: v for k, v in record.items() if k not in ("ids", "logprobs")})
    path = Path(tempfile.mkdtemp(prefix="cqa-export-")) / f"draft.{kind}"
    path.write_text(body, encoding="utf-8")
    return str(path)


# ---- API endpoints (gradio_client): plain arguments in, plain JSON out ----------------------
def _api_answer(u, variant: str, strength: float) -> dict:
    return {"draft": u.text, "notes": u.notes, "notice": u.notice, "stop_reason": u.stop_reason,
            "model": variant, "guidance": u.guidance, "cqa_strength": strength if variant in TUNED else None,
            "seed": u.seed,
            "score": _score_json(u, variant, strength)}


def _api_settings(model, temperature, top_p, top_k, min_p, repeat_penalty, seed, max_tokens, stop, guidance_,
                  cqa_strength):
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS.get(str(model), DEFAULT_MAX_TOKENS[BASE_LABEL])
    values = dict(zip(SAMPLER_FIELDS, (temperature, top_p, top_k, min_p, repeat_penalty, seed, max_tokens, stop)))
    return _settings(values, guidance_, cqa_strength)


def api_draft(task: str = "", intent: str = "", audience: str = "", world: str = "", text_so_far: str = "",
              model: str = BASE_LABEL, template: str = "chat", temperature: float = 0.8, top_p: float = 0.95,
              top_k: int = 40, min_p: float = 0.05, repeat_penalty: float = 1.1, seed: int = 0,
              max_tokens: int | None = None, stop: str = "", guidance: float = DEFAULTS.guidance,
              cqa_strength: float = 1.0, n: int = DEFAULTS.drafts, notes: bool = DEFAULTS.reason_first) -> dict:
    """Write a draft for the brief; returns {"draft", "notes", "notice", "stop_reason", "guidance", "cqa_strength",
    "seed", "score": {... "tokens": [...]}, "ranked": [every draft, best first]}. max_tokens defaults to the
    model's own (200 for base and CQA-passage; 1024 for CQA, whose notes come first); model is "base", "CQA"
    (the adapter that reasons first) or "CQA-passage" (the passage-only adapter, which always writes the passage
    at once); guidance is brief guidance alpha (0-3), cqa_strength the tuned adapter's scale (0-2); n drafts
    (1-8, seeds seed..seed+n-1) are ranked by I over uncopied tokens per budget token, drafts restating the brief
    last (assistant/ranking.py); notes=False makes the CQA model write its passage at once."""
    from assistant import ranking
    with user_error_messages():
        sampler, alpha, strength = _api_settings(model, temperature, top_p, top_k, min_p, repeat_penalty, seed,
                                                 max_tokens, stop, guidance, cqa_strength)
        n = _n_drafts(n)
        brief = _brief(task, intent, audience, world, text_so_far)
        # the API answers with the finished drafts only: the stream's last update
        best = collections.deque(BACKEND.best_of(brief, sampler, n, variant=model, strength=strength,
                                                 template=template, guidance=alpha,
                                                 notes=writes_notes(model, notes)), maxlen=1)[0]
    ranked = []
    for u in best.ranked:
        a = _api_answer(u, model, strength)
        a["rank_score"] = ranking.rank_score(a["score"], sampler.max_tokens) if a["score"] else None
        ranked.append(a)
    return {**ranked[0], "ranked": ranked}


def api_compare(task: str = "", intent: str = "", audience: str = "", world: str = "", text_so_far: str = "",
                template: str = "chat", temperature: float = 0.8, top_p: float = 0.95, top_k: int = 40,
                min_p: float = 0.05, repeat_penalty: float = 1.1, seed: int = 0, max_tokens: int | None = None,
                stop: str = "", guidance: float = 0.0, cqa_strength: float = 1.0, tuned: str = CQA_LABEL) -> dict:
    """Base and a tuned model ("CQA", reasoning first, or "CQA-passage") on the same brief, seed and guidance:
    {"base": draft, tuned: draft, "difference": the tuned draft's I per token minus base's (bits/token, None when
    either has no scored passage)}; each draft as /draft returns it. max_tokens defaults to each model's own."""
    with user_error_messages():
        brief = _brief(task, intent, audience, world, text_so_far)
        _check_tuned(tuned)
        answers = {}
        for variant in (BASE_LABEL, tuned):
            sampler, alpha, strength = _api_settings(variant, temperature, top_p, top_k, min_p, repeat_penalty,
                                                     seed, max_tokens, stop, guidance, cqa_strength)
            last = collections.deque(_stream(brief, variant, template, sampler, None, None, alpha, strength,
                                             writes_notes(variant)), maxlen=1)[0]
            answers[variant] = _api_answer(last, variant, strength)
    scores = [answers[v]["score"] for v in (BASE_LABEL, tuned)]
    answers["difference"] = (scores[1]["I_per_token"] - scores[0]["I_per_token"]) if all(scores) else None
    return answers


def api_score(text: str, task: str = "", intent: str = "", audience: str = "", world: str = "",
              text_so_far: str = "", model: str = BASE_LABEL, template: str = "chat") -> dict:
    """Calibrated surprise of `text` under the brief: I, H_X, H_X_given_Y, I_uncopied, tokens, ..."""
    with user_error_messages():
        _check_text({"text": text})
        brief = _brief(task, intent, audience, world, text_so_far)
        return BACKEND.score(brief, text, variant=model, template=template)


def _max_tokens_for(variant: str, current):
    """Switching model moves Max tokens to that model's default, unless the user chose another value."""
    if current in DEFAULT_MAX_TOKENS.values() and variant in DEFAULT_MAX_TOKENS:
        return DEFAULT_MAX_TOKENS[variant]
    return gr.skip()


def build() -> gr.Blocks:
    with gr.Blocks(title="CQA writing assistant") as demo:
        gr.Markdown("# CQA writing assistant\nDescribe what you want; get drafts with a *calibrated surprise* "
                    "score: how much your brief explains words that would be surprising on their own.")
        last = gr.State({})
        variants = BACKEND.variants()
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
                        n_drafts = gr.Slider(1, writer.MAX_DRAFTS, DEFAULTS.drafts, step=1, label="Drafts",
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
                    tokens = gr.HTML(elem_id="token-view")
                    plot = gr.Plot(label="Surprisal per token")
                    with gr.Row():
                        md_btn = gr.Button("Export Markdown")
                        json_btn = gr.Button("Export JSON")
                    export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
            model.change(_max_tokens_for, [model, sampler_in[6]], sampler_in[6], api_visibility="private")
            model.change(lambda v: (gr.update(visible=v in TUNED), gr.update(visible=v == CQA_LABEL)), model,
                         [strength, reason_first], api_visibility="private")
            ins = [*brief_in, model, template, alpha, strength, n_drafts, reason_first, draft, last, *sampler_in]
            outs = [draft, notice, card_md, tokens, plot, last, ranked, batch]
            ranked.input(open_ranked, [ranked, batch], outs[:6], api_visibility="private")
            gen_ev = gen_btn.click(generate, ins, outs, api_visibility="private")
            regen_ev = regen_btn.click(lambda s: int(s or 0) + 1, sampler_in[5], sampler_in[5],
                                       api_visibility="private").then(generate, ins, outs, api_visibility="private")
            cont_ev = cont_btn.click(continue_draft, ins, outs, api_visibility="private")
            stop_btn.click(stop, None, None, queue=False, api_visibility="private")
            md_btn.click(lambda r: export(r, "md"), last, export_file, api_visibility="private")
            json_btn.click(lambda r: export(r, "json"), last, export_file, api_visibility="private")
            del gen_ev, regen_ev, cont_ev
        with gr.Tab("Compare", elem_id="compare-tab"):
            gr.Markdown("Base and a tuned model on the brief, sampler settings, brief guidance and CQA strength of "
                        "the Write tab, with the same seed: each scored live as it streams, then which scored higher.")
            tuned_in = [v for v in variants if v in TUNED]
            cmp_tuned = gr.Radio(tuned_in or [CQA_LABEL], value=(tuned_in or [CQA_LABEL])[0], label="Tuned model",
                                 info="CQA reasons in notes first; CQA-passage writes the passage at once",
                                 elem_id="compare-tuned")
            with gr.Row():
                cmp_btn = gr.Button("Generate with both", variant="primary")
                cmp_stop = gr.Button("Stop comparing")
            cmp_verdict = gr.Markdown(elem_id="compare-verdict")
            with gr.Row():
                left = gr.Markdown(label="base", elem_id="compare-base")
                right = gr.Markdown(label="CQA", elem_id="compare-cqa")
            cmp_btn.click(compare_tab, [*brief_in, cmp_tuned, template, alpha, strength, *sampler_in],
                          [left, right, cmp_verdict],
                          api_visibility="private")
            cmp_stop.click(stop, None, None, queue=False, api_visibility="private")
        with gr.Tab("Score", elem_id="score-tab"):
            with gr.Row():
                with gr.Column():
                    s_brief = [gr.Textbox(label=f.replace("_", " ").capitalize()) for f in BRIEF_FIELDS]
                    s_model = gr.Radio(variants, value=variants[0], label="Model")
                    s_template = gr.Radio(["chat", "plain"], value="chat", label="Prompt template")
                    text_a = gr.Textbox(label="Version A", lines=6)
                    text_b = gr.Textbox(label="Version B (optional)", lines=6)
                    score_btn = gr.Button("Score", variant="primary")
                with gr.Column():
                    verdict = gr.Markdown(elem_id="score-verdict")
                    card_a, tokens_a, plot_a = gr.Markdown(elem_id="score-card-a"), gr.HTML(elem_id="token-view-a"), gr.Plot()
                    card_b, tokens_b = gr.Markdown(elem_id="score-card-b"), gr.HTML(elem_id="token-view-b")
            score_btn.click(score_tab, [*s_brief, s_model, s_template, text_a, text_b],
                            [card_a, tokens_a, plot_a, card_b, tokens_b, verdict], api_visibility="private")
        if ANNOTATIONS is not None:
            import annotate_tab
            annotate_tab.build(ANNOTATIONS, BACKEND.suggest_steps, user_error_messages)
        gr.api(api_draft, api_name="draft")
        gr.api(api_compare, api_name="compare")
        gr.api(api_score, api_name="score")
    return demo


def main(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description="CQA writing assistant")
    p.add_argument("--host", default=env("CQA_HOST", env("GRADIO_SERVER_NAME", "127.0.0.1")), help="bind address (0.0.0.0 for a Space)")
    p.add_argument("--port", type=int, default=int(env("CQA_PORT", env("GRADIO_SERVER_PORT", "7860"))))
    p.add_argument("--model", default=env("CQA_MODEL"), help="catalog name, .gguf path or owner/repo:file.gguf")
    p.add_argument("--adapter", default=env("CQA_ADAPTER"),
                   help="CQA LoRA adapter: a .gguf path or a Hub repo OWNER/NAME made by `python -m finetune push`")
    p.add_argument("--passage-adapter", default=env("CQA_PASSAGE_ADAPTER"),
                   help="passage-only LoRA adapter (the CQA-passage model): a .gguf path or a Hub repo OWNER/NAME")
    p.add_argument("--no-cqa", action="store_true", help="offer the base model alone (no tuned adapter)")
    p.add_argument("--annotations", default=env("CQA_ANNOTATIONS"),
                   help="annotation file (JSON Lines) the Annotate tab appends to; without it the tab is hidden")
    p.add_argument("--concurrency", type=int, default=int(env("CQA_CONCURRENCY", "2")),
                   help="requests run at once; one llama.cpp context serves them one at a time")
    p.add_argument("--queue-size", type=int, default=int(env("CQA_QUEUE_SIZE", "32")), help="requests that may wait")
    p.add_argument("--threads", type=int, default=int(env("CQA_THREADS", "0")) or None, help="CPU threads")
    p.add_argument("--n-ctx", type=int, default=int(env("CQA_N_CTX", "2048")), help="context window, tokens")
    p.add_argument("--ray", default=env("CQA_RAY"), metavar="auto|ADDRESS",
                   help="run the engine as Ray Serve replicas (auto: a running local cluster, else start one)")
    p.add_argument("--replicas", type=int, default=int(env("CQA_REPLICAS", "2")), help="Ray: engine replicas")
    p.add_argument("--replica-threads", type=int, default=int(env("CQA_REPLICA_THREADS", "1")),
                   help="Ray: llama.cpp threads (and CPUs) per replica")
    p.add_argument("--autoscale", type=float, nargs=3, metavar=("MIN", "MAX", "TARGET"), default=None,
                   help="Ray: autoscale replicas between MIN and MAX at TARGET ongoing requests per replica")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    global POOL, BACKEND, ANNOTATIONS
    ANNOTATIONS = Path(args.annotations) if args.annotations else None
    config = PoolConfig(args.model, args.adapter or None, args.threads, args.n_ctx, cqa=not args.no_cqa,
                        passage_adapter=args.passage_adapter or None)
    POOL = Pool(config)
    try:
        if args.ray:   # optional scale-out: Ray is imported only here
            from assistant import ray_backend
            serve_cfg = ray_backend.ServeConfig(
                args.ray, args.replicas, float(args.replica_threads), args.replica_threads,
                (int(args.autoscale[0]), int(args.autoscale[1]), args.autoscale[2]) if args.autoscale else None)
            BACKEND = ray_backend.RayBackend(ray_backend.deploy(config, serve_cfg))
        else:
            BACKEND = LocalBackend(POOL)
        BACKEND.load()   # load now: a bad model or adapter fails here, in one line
    except USER_ERRORS as e:
        raise SystemExit(f"error: {e}")
    demo = build()
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    demo.launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
