"""Brief + text -> calibrated-surprise result: the engine's log-probs fed to the pure scorer.

    >>> from assistant.engine import Engine                      # doctest: +SKIP
    >>> eng = Engine.load()                                       # doctest: +SKIP
    >>> r = score_text(eng, Brief(intent="..."), "Her calm...")   # doctest: +SKIP
    >>> r.score.I_per_token, r.to_json()["tokens"][0]             # doctest: +SKIP

Pasted text costs one batched decode of two sequences (conditional and unconditional
prompt, the same text after each). A fresh draft costs nothing more: its twin stream
already holds both log-probs of every token (`from_logprobs`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import copying, surprise
from .brief import Brief, Prompts, render, render_context
from .engine import Engine, EngineError, TokenLogprobs
from .logits import TopK


@dataclass(frozen=True)
class ScoredText:
    text: str
    pieces: list[str]
    offsets: list[tuple[int, int]]
    score: surprise.Score
    prompts: Prompts
    template: str       # "chat" or "plain": report it, it changes the numbers
    top: TopK | None = None   # per token, the likeliest alternatives under the brief (and without it)

    def uncopied(self, n: int) -> dict:
        """I over the tokens not copied from the brief when copying means a shared run of `n` words or more
        (the score itself uses copying.N_WORDS; eval reports other n beside it)."""
        flags = np.asarray(copying.copied_tokens(self.offsets, self.text, self.prompts.brief_text, n), dtype=bool)
        i = self.score.i[~flags] if flags.size else self.score.i
        return {"n_copied": int(flags.sum()), "I_uncopied": float(i.sum()),
                "I_uncopied_per_token": float(i.mean()) if i.size else 0.0}

    def copy_rules(self, ns=(2, 3)) -> dict:
        """{"2": uncopied(2), "3": uncopied(3)}: the copied-span rule measured both ways."""
        return {str(n): self.uncopied(n) for n in ns}

    def to_json(self) -> dict:
        s = self.score
        d = {"text": self.text, "template": self.template, **s.summary(),
             "brief_overlap": copying.brief_overlap(self.text, self.prompts.brief_text),
             "n_words": copying.n_words(self.text)}
        d["tokens"] = [{"token": p, "s0": float(a), "sY": float(b), "i": float(a - b), "copied": bool(c),
                        "class": k}
                       for p, a, b, c, k in zip(self.pieces, s.s0, s.sY, s.copied, s.classes)]
        return d


def prompts_for(engine: Engine, brief: Brief | None = None, context: str | None = None,
                template: str = "chat") -> Prompts:
    """The conditional / unconditional prompts for a brief (or a prose context) on this engine."""
    if template not in ("chat", "plain"):
        raise EngineError(f"unknown template {template!r}: use 'chat' or 'plain'")
    chat = engine.chat_formatter if template == "chat" else None
    if template == "chat" and chat is None:
        raise EngineError(f"{engine.model.name} has no chat template in its GGUF: use template 'plain'")
    if context is not None:
        return render_context(context, chat)
    return render(brief or Brief(), chat)


def score_text(engine: Engine, brief: Brief | None, text: str, *, context: str | None = None,
               template: str = "chat", conditional: TokenLogprobs | None = None,
               ids: list[int] | None = None) -> ScoredText:
    """Two passes (or one, when `conditional` log-probs of `ids` come from the generation)."""
    if not text or not text.strip():
        raise EngineError("there is no text to score: write or paste some first")
    prompts = prompts_for(engine, brief, context, template)
    if ids is None:
        ids = engine.tokenize_text(text)
    if conditional is not None:
        cond, uncond = conditional, engine.token_logprobs_ids(prompts.unconditional, ids)
        return _scored(uncond, cond.logprobs, uncond.logprobs, prompts, template)
    cond, uncond = engine.token_logprobs_pair(prompts.conditional, prompts.unconditional, ids)
    return _scored(uncond, cond.logprobs, uncond.logprobs, prompts, template, _top(cond, uncond))


def score_texts(engine: Engine, brief: Brief | None, texts: list[str], template: str = "chat", *,
                context: str | None = None, top: bool = True) -> list[ScoredText]:
    """`score_text` for several texts under one brief (versions of a passage, drafts of one brief, a pair's two
    passages): the two prompts are decoded once and shared by every text; the numbers are score_text's.
    `top` False: no token alternatives (ScoredText.top None), for scores nobody will click through."""
    if not texts or any(not t or not t.strip() for t in texts):
        raise EngineError("there is no text to score: write or paste some first")
    prompts = prompts_for(engine, brief, context, template)
    got = engine.token_logprobs_many(prompts.conditional, prompts.unconditional, [engine.tokenize_text(t) for t in texts],
                                     top)
    return [_scored(u, c.logprobs, u.logprobs, prompts, template, _top(c, u)) for c, u in got]


def _top(cond: TokenLogprobs, uncond: TokenLogprobs) -> TopK | None:
    return None if cond.top_ids is None else TopK(cond.top_ids, cond.top_lp, uncond.top_lp)


def from_logprobs(engine: Engine, prompts: Prompts, ids: list[int], cond_logprobs, uncond_logprobs,
                  template: str = "chat", top: TopK | None = None) -> ScoredText:
    """Score tokens whose two log-probs are already known (a twin-stream draft): no pass at all."""
    pieces, offsets, text = engine.pieces(list(ids))
    lps = TokenLogprobs(list(ids), pieces, offsets, np.asarray(uncond_logprobs, dtype=np.float64), text)
    return _scored(lps, np.asarray(cond_logprobs, dtype=np.float64), lps.logprobs, prompts, template, top)


def _scored(tokens: TokenLogprobs, cond_lp, uncond_lp, prompts: Prompts, template: str,
            top: TopK | None = None) -> ScoredText:
    s0 = surprise.bits_from_logprobs(uncond_lp)
    sY = surprise.bits_from_logprobs(cond_lp)
    copied = copying.copied_tokens(tokens.offsets, tokens.text, prompts.brief_text)
    return ScoredText(tokens.text, tokens.pieces, tokens.offsets, surprise.score(s0, sY, copied), prompts, template,
                      top)
