"""The score cache that makes every eval step safe to re-run, and the model opened only on a cache miss.

    python -m eval pairs --cache eval/out/scores.jsonl --out eval/out/pairs      # run it twice: nothing is scored twice

Append-only JSON Lines of {"key", "value"}: every draft and every score goes in as soon as it is made, keyed
by the sha256 of what made it (scorer version, model and adapter files, template, prompt, text), so a re-run,
an interrupted run, or a run that adds one adapter only does what is new, and a fully cached step never
loads a model.

    >>> c = ScoreCache(None)
    >>> c.key("a", 1) == c.key("a", 1) != c.key("a", 2)
    True
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Generic, TypeVar

from assistant.jsonl_cache import JsonlCache

# Bump when scoring changes (prompts, stored fields) to invalidate caches. Not bumped when the score moved from
# 3-word to 2-word copied spans: version-2 pair and grid records carry both rules, and `copyrule.follow` reads
# them under the score's rule of today; a record without them (eval generate's older reads, a grid draft's own
# score) is scored again where it is read.
SCORER_VERSION = 2


class ScoreCache(JsonlCache):
    """The eval's cache (assistant/jsonl_cache.py), its keys versioned by SCORER_VERSION. path None: in memory."""

    def __init__(self, path: Path | None):
        super().__init__(path, SCORER_VERSION)


T = TypeVar("T")


class Lazy(Generic[T]):
    """A model (reader or writer) opened on first use and closed when the block ends; never opened, never paid.

        with Lazy(lambda: open_writer(w)) as writer:
            ... writer().draft(...)      # loads the model the first time the cache has no answer
    """

    def __init__(self, open_: Callable[[], T]):
        self._open, self._value, self.opened = open_, None, False

    def __call__(self) -> T:
        if not self.opened:
            self._value, self.opened = self._open(), True
        return self._value

    def __enter__(self) -> "Lazy[T]":
        return self

    def __exit__(self, *exc) -> None:
        if self.opened and self._value is not None:
            self._value.close()
