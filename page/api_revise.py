"""The revision tools as JSON endpoints (gradio_client): a draft id from /draft or /score, then alternatives at a
token, rewrite from it, Undo, weak spots, suggestions for a sentence, insert one.

    >>> c = Client("http://127.0.0.1:7860/")                                                    # doctest: +SKIP
    >>> d = c.predict(task="A ghost story", api_name="/draft")                                   # doctest: +SKIP
    >>> alts = c.predict(draft_id=d["draft_id"], position=3, api_name="/alternatives")           # doctest: +SKIP
    >>> new = c.predict(draft_id=d["draft_id"], position=3, token=alts["alternatives"][1]["token"],
    ...                 api_name="/rewrite")                                                     # doctest: +SKIP
    >>> c.predict(draft_id=d["draft_id"], api_name="/undo")["text"] == d["draft"]                # doctest: +SKIP

Every endpoint answers a bad value with one message: a position outside the text, an unknown or expired draft
id, an empty sentence, a token that is no token of the model.
"""
from __future__ import annotations

import collections
import dataclasses

import gradio as gr

from assistant import alternatives, revise, weakspots
from assistant.errors import BadInput
from assistant.history import History
from assistant.pool import TUNED
from assistant.revise import Version

from .plumbing import user_error_messages


def version_json(key: str, v: Version, versions: int) -> dict:
    """A version as the API shows it: its text and score, the settings that wrote it, how many versions exist."""
    score = v.result.to_json() if v.result is not None else None
    if score is not None:
        score["guidance"] = v.guidance
        score["cqa_strength"] = v.strength if v.variant in TUNED else None
    return {"draft_id": key, "text": v.text, "notice": v.notice, "model": v.variant, "template": v.template,
            "guidance": v.guidance, "cqa_strength": v.strength if v.variant in TUNED else None,
            "sampler": v.sampler.to_dict(), "versions": versions, "score": score}


class RevisionApi:
    def __init__(self, backend, history: History):
        self.backend, self.history = backend, history

    def register(self) -> None:
        for fn in (self.alternatives, self.rewrite, self.undo, self.weak_spots, self.suggest, self.insert):
            gr.api(fn, api_name=fn.__name__)

    def alternatives(self, draft_id: str, position: int, sort: str = "p") -> dict:
        """The alternatives at token `position` (from 0) of a draft or scored text: {"draft_id", "position",
        "alternatives": [{"token" (id), "text", "p" (p(x|Y)), "p0" (p(x)), "sY", "s0", "i" (bits), "class",
        "class_words", "copies" (it would copy the brief), "written" (the token the text holds)}]}, sorted by
        p(x|Y) (sort "p") or by i (sort "i"). Costs no model pass: the score kept these rows."""
        with user_error_messages():
            v = self.history.current(draft_id)
            rows = self.backend.alternatives(v.result, position, variant=v.variant, strength=v.strength, ids=v.ids,
                                             sort=sort)
        return {"draft_id": draft_id, "position": int(position), "alternatives": rows}

    def rewrite(self, draft_id: str, position: int, token: int) -> dict:
        """Rewrite the draft from token `position`, which becomes `token` (an id from /alternatives), with the
        same model, sampler, guidance and strength; the new version of the draft id, as /undo shows versions."""
        with user_error_messages():
            v = self.history.current(draft_id)
            ids = v.ids if v.ids is not None else self.backend.tokenize(v.text, variant=v.variant, strength=v.strength)
            last = collections.deque(self.backend.rewrite(v.brief, v.sampler, ids, position, token, variant=v.variant,
                                                          strength=v.strength, template=v.template,
                                                          guidance=v.guidance), maxlen=1)[0]
            if last.result is None:
                raise BadInput("the rewrite produced no scored text: try another alternative")
            new = dataclasses.replace(v, text=last.text, ids=last.ids, result=last.result, notice=last.notice)
            self.history.push(draft_id, new)
            return version_json(draft_id, new, self.history.depth(draft_id))

    def undo(self, draft_id: str) -> dict:
        """Back to the version before the last rewrite or insert."""
        with user_error_messages():
            v = self.history.undo(draft_id)
            return version_json(draft_id, v, self.history.depth(draft_id))

    def weak_spots(self, draft_id: str) -> dict:
        """Every sentence of the current version with its I per token (uncopied, bits/token), s0, sY, and for the
        weak ones (lowest I, below the text's) the kind (unexplained / cliche / noise) and a reason in words:
        {"draft_id", "sentences": [...], "weak": [indices, lowest I first]}."""
        with user_error_messages():
            v = self.history.current(draft_id)
            found = weakspots.from_scored(v.result)
        return {"draft_id": draft_id, "sentences": [s.to_json() for s in found],
                "weak": [s.index for s in weakspots.weak(found)]}

    def suggest(self, draft_id: str, sentence: int, n: int = 3) -> dict:
        """Up to n rewrites of sentence number `sentence` (an index from /weak_spots) by the same model, each with
        the whole text's new score and its change, best first (I over uncopied tokens; restating drafts last)."""
        with user_error_messages():
            v = self.history.current(draft_id)
            s = self._sentence(v, sentence)
            found = self.backend.suggest(v.brief, v.text, s.start, s.end, v.sampler, variant=v.variant,
                                         strength=v.strength, template=v.template, n=n, before=v.result.to_json())
        return {"draft_id": draft_id, "sentence": s.to_json(), "suggestions": found}

    def insert(self, draft_id: str, sentence: int, text: str) -> dict:
        """Put `text` in place of sentence number `sentence`; the whole text is scored again (a new version)."""
        with user_error_messages():
            v = self.history.current(draft_id)
            s = self._sentence(v, sentence)
            if not isinstance(text, str) or not text.strip():
                raise BadInput("the new sentence is empty: give the text to insert")
            result = self.backend.scored(v.brief, revise.splice(v.text, s.start, s.end, text), variant=v.variant,
                                         strength=v.strength, template=v.template)
            new = dataclasses.replace(v, text=result.text, ids=None, result=result, notice="")
            self.history.push(draft_id, new)
            return version_json(draft_id, new, self.history.depth(draft_id))

    @staticmethod
    def _sentence(v: Version, index) -> weakspots.Sentence:
        found = weakspots.from_scored(v.result)
        if not found:
            raise BadInput("the text has no sentence to rewrite")
        try:
            k = alternatives.check_position(index, len(found))
        except BadInput:
            raise BadInput(f"sentence {index!r} is outside the text: it has {len(found)} sentences (0 to "
                           f"{len(found) - 1})") from None
        return found[k]
