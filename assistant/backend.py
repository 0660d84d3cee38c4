"""Where the app's model work runs, behind one narrow interface: in this process (the default), or on Ray Serve
replicas (assistant/ray_backend.py, `python app.py --ray auto`).

    >>> be = LocalBackend(Pool())                                                     # doctest: +SKIP
    >>> for u in be.write(Brief(task="Open a ghost story"), Sampler(seed=1), variant="base"): print(u.text)

Every method takes plain values and returns what the writer returns (Updates, a score's JSON, token ids),
so the page never knows which backend it talks to.
"""
from __future__ import annotations

import threading
from typing import Iterator

from . import writer
from .brief import Brief
from .pool import Pool
from .sampler import Sampler
from .writer import Update


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

    def suggest_steps(self, brief: Brief, passage: str, seed: int = 0) -> list[dict]:
        from finetune import workbench
        return workbench.suggest_steps(self.pool.get("CQA"), brief, passage, seed)
