"""Where the app's model work runs, behind one narrow interface: in this process (the default), or on Ray Serve
replicas (assistant/ray_backend.py, `python app.py --ray auto`).

    >>> be = LocalBackend(Pool())                                                     # doctest: +SKIP
    >>> for u in be.write(Brief(task="Open a ghost story"), Sampler(seed=1), variant="base"): print(u.text)

Every method takes plain values and returns what the writer returns (Updates, a score's JSON, token ids,
the tuned model's notes as text), so the page never knows which backend it talks to.
"""
from __future__ import annotations

import threading
from typing import Iterator

from . import revise, writer
from .brief import NOTES_HEADER, PASSAGE_HEADER, Brief
from .engine import Engine
from .pool import CQA_LABEL, Pool
from .sampler import Sampler
from .scoring import ScoredText, prompts_for
from .writer import Update

NOTES_MAX_TOKENS = 480      # new tokens of notes (a CQA model's run ~500 on the corpus; each whole line is a step)
NOTES_TEMPERATURE = 0.7


class LocalBackend:
    """The engine in this process: one model in memory, base and CQA as variants of it."""

    def __init__(self, pool: Pool):
        self.pool = pool

    def variants(self) -> list[str]:
        return self.pool.variants()

    def load(self) -> None:
        """Load every variant now, so a bad model or adapter fails at startup."""
        for v in self.variants():
            self.pool.get(v)

    def write(self, brief: Brief, sampler: Sampler, *, variant: str, strength: float = 1.0, template: str = "chat",
              cancel: threading.Event | None = None, prefix_ids: list[int] | None = None, guidance: float = 0.0,
              notes: bool = True) -> Iterator[Update]:
        yield from writer.write(self.pool.get(variant, strength), brief, sampler, template, cancel, prefix_ids,
                                guidance=guidance, notes=notes)

    def best_of(self, brief: Brief, sampler: Sampler, n: int, *, variant: str, strength: float = 1.0,
                template: str = "chat", cancel: threading.Event | None = None, guidance: float = 0.0,
                notes: bool = True) -> Iterator[Update]:
        yield from writer.best_of(self.pool.get(variant, strength), brief, sampler, n, template, cancel, guidance,
                                  notes)

    def score(self, brief: Brief, text: str, *, variant: str, template: str = "chat") -> dict:
        return writer.score(self.pool.get(variant), brief, text, template).to_json()

    def tokenize(self, text: str, *, variant: str, strength: float = 1.0) -> list[int]:
        return self.pool.get(variant, strength).tokenize_text(text)

    def write_notes(self, brief: Brief, seed: int = 0) -> str:
        """The CQA model's notes for the brief, as raw text (see write_notes)."""
        return write_notes(self.pool.get(CQA_LABEL), brief, seed)

    # ---- revision tools (assistant/revise.py) -------------------------------------------
    def scored(self, brief: Brief, text: str, *, variant: str, strength: float = 1.0,
               template: str = "chat") -> ScoredText:
        """A pasted text's score as an object: its JSON, and the alternatives' rows (`top`)."""
        return writer.score(self.pool.get(variant, strength), brief, text, template)

    def alternatives(self, result: ScoredText, position: int, *, variant: str, strength: float = 1.0,
                     ids: list[int] | None = None, sort: str = "p") -> list[dict]:
        eng = self.pool.get(variant, strength)
        return [a.to_json() for a in revise.alternatives(eng, result, position, ids, sort)]

    def rewrite(self, brief: Brief, sampler: Sampler, ids: list[int], position: int, token: int, *, variant: str,
                strength: float = 1.0, template: str = "chat", guidance: float = 0.0,
                cancel: threading.Event | None = None) -> Iterator[Update]:
        yield from revise.rewrite(self.pool.get(variant, strength), brief, sampler, template, ids, position, token,
                                  guidance, cancel)

    def suggest(self, brief: Brief, text: str, start: int, end: int, sampler: Sampler, *, variant: str,
                strength: float = 1.0, template: str = "chat", n: int = 3, before: dict | None = None) -> list[dict]:
        return [s.to_json() for s in revise.suggest(self.pool.get(variant, strength), brief, text, start, end,
                                                    sampler, template, n, before=before)]


def write_notes(engine: Engine, brief: Brief, seed: int = 0, max_tokens: int = NOTES_MAX_TOKENS) -> str:
    """A tuned model's notes for a brief, as it writes them before its passage: lines like
    `- [audience/lexis] «a boiling pan» over «torrential rain»: Children know pans.` (finetune/render.py's
    format; finetune.workbench.parse_notes reads them). The notes are begun for it (the header and the first
    line's "- [") and end where it would start the passage."""
    opening = f"{NOTES_HEADER}\n- ["
    gen = engine.tokenize_prompt(prompts_for(engine, brief).conditional) + engine.tokenize_text(opening)
    sampler = Sampler(temperature=NOTES_TEMPERATURE, seed=seed, max_tokens=max_tokens, stop=(PASSAGE_HEADER,))
    with engine.draft(gen, sampler) as run:
        while run.step() is not None:
            continue
        return "- [" + run.finish().text
