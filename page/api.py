"""The page's JSON API (gradio_client): plain arguments in, plain JSON out.

    >>> from gradio_client import Client                                           # doctest: +SKIP
    >>> Client("http://127.0.0.1:7860/").predict(task="A ghost story", api_name="/draft")["draft"]  # doctest: +SKIP

/draft writes (best of n), /compare writes with the base and a tuned model, /score scores a pasted text; a
user's mistake comes back as an error with its message (AppError in gradio_client), like the page's.
"""
from __future__ import annotations

import collections
import dataclasses

import gradio as gr

from assistant import ranking
from assistant.defaults import CURRENT as DEFAULTS
from assistant.history import History
from assistant.pool import BASE_LABEL, CQA_LABEL, DEFAULT_MAX_TOKENS, TUNED, writes_notes
from assistant.revise import Version
from assistant.sampler import Sampler

from .api_revise import RevisionApi
from .compare import check_tuned
from .plumbing import SAMPLER_FIELDS, brief, check_text, n_drafts, score_json, settings, user_error_messages


class Api:
    def __init__(self, backend, history: History | None = None):
        self.backend = backend
        self.history = history or History()   # draft ids for the revision endpoints (page/api_revise.py)

    def register(self) -> None:
        """The named endpoints, inside an open gr.Blocks: /draft, /compare, /score, and the revision tools'."""
        gr.api(self.draft, api_name="draft")
        gr.api(self.compare, api_name="compare")
        gr.api(self.score, api_name="score")
        RevisionApi(self.backend, self.history).register()

    def draft(self, task: str = "", intent: str = "", audience: str = "", world: str = "", text_so_far: str = "",
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
        with user_error_messages():
            sampler, alpha, strength = _settings(model, temperature, top_p, top_k, min_p, repeat_penalty, seed,
                                                 max_tokens, stop, guidance, cqa_strength)
            n = n_drafts(n)
            b = brief(task, intent, audience, world, text_so_far)
            # the API answers with the finished drafts only: the stream's last update
            best = _last(self.backend.best_of(b, sampler, n, variant=model, strength=strength, template=template,
                                              guidance=alpha, notes=writes_notes(model, notes)))
        ranked = []
        for u in best.ranked:
            a = _answer(u, model, strength)
            a["rank_score"] = ranking.rank_score(a["score"], sampler.max_tokens) if a["score"] else None
            version = Version(b, u.text, u.ids, u.result, model, strength, template,
                              dataclasses.replace(sampler, seed=u.seed if u.seed is not None else sampler.seed),
                              alpha, writes_notes(model, notes))
            a["draft_id"] = self.history.new(version) if u.result is not None else None
            ranked.append(a)
        return {**ranked[0], "ranked": ranked}

    def compare(self, task: str = "", intent: str = "", audience: str = "", world: str = "", text_so_far: str = "",
                template: str = "chat", temperature: float = 0.8, top_p: float = 0.95, top_k: int = 40,
                min_p: float = 0.05, repeat_penalty: float = 1.1, seed: int = 0, max_tokens: int | None = None,
                stop: str = "", guidance: float = 0.0, cqa_strength: float = 1.0, tuned: str = CQA_LABEL) -> dict:
        """Base and a tuned model ("CQA", reasoning first, or "CQA-passage") on the same brief, seed and guidance:
        {"base": draft, tuned: draft, "difference": the tuned draft's I per token minus base's (bits/token, None when
        either has no scored passage)}; each draft as /draft returns it. max_tokens defaults to each model's own."""
        with user_error_messages():
            b = brief(task, intent, audience, world, text_so_far)
            check_tuned(self.backend, tuned)
            answers = {}
            for variant in (BASE_LABEL, tuned):
                sampler, alpha, strength = _settings(variant, temperature, top_p, top_k, min_p, repeat_penalty,
                                                     seed, max_tokens, stop, guidance, cqa_strength)
                last = _last(self.backend.write(b, sampler, variant=variant, strength=strength, template=template,
                                                guidance=alpha, notes=writes_notes(variant)))
                answers[variant] = _answer(last, variant, strength)
        scores = [answers[v]["score"] for v in (BASE_LABEL, tuned)]
        answers["difference"] = (scores[1]["I_per_token"] - scores[0]["I_per_token"]) if all(scores) else None
        return answers

    def score(self, text: str, task: str = "", intent: str = "", audience: str = "", world: str = "",
              text_so_far: str = "", model: str = BASE_LABEL, template: str = "chat") -> dict:
        """Calibrated surprise of `text` under the brief: I, H_X, H_X_given_Y, I_uncopied, tokens, ..., and
        draft_id (for /alternatives, /rewrite, /weak_spots, /suggest: a rewrite uses the model's default sampler)."""
        with user_error_messages():
            check_text({"text": text})
            b = brief(task, intent, audience, world, text_so_far)
            scored = self.backend.scored(b, text, variant=model, template=template)
            sampler = Sampler(max_tokens=DEFAULT_MAX_TOKENS.get(str(model), DEFAULT_MAX_TOKENS[BASE_LABEL]))
            key = self.history.new(Version(b, scored.text, None, scored, model, 1.0, template, sampler))
            return {**scored.to_json(), "draft_id": key}


def _last(updates):
    return collections.deque(updates, maxlen=1)[0]


def _answer(u, variant: str, strength: float) -> dict:
    return {"draft": u.text, "notes": u.notes, "notice": u.notice, "stop_reason": u.stop_reason,
            "model": variant, "guidance": u.guidance, "cqa_strength": strength if variant in TUNED else None,
            "seed": u.seed, "score": score_json(u, variant, strength)}


def _settings(model, temperature, top_p, top_k, min_p, repeat_penalty, seed, max_tokens, stop, guidance_,
              cqa_strength):
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS.get(str(model), DEFAULT_MAX_TOKENS[BASE_LABEL])
    values = dict(zip(SAMPLER_FIELDS, (temperature, top_p, top_k, min_p, repeat_penalty, seed, max_tokens, stop)))
    return settings(values, guidance_, cqa_strength)
