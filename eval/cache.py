"""The score cache that makes every eval step safe to re-run, and the model opened only on a cache miss.

    python -m eval pairs --cache eval/out/scores.jsonl --out eval/out/pairs      # run it twice: nothing is scored twice

Append-only JSON Lines of {"key", "value"}: every draft and every score goes in as soon as it is made, keyed
by the sha256 of what made it (scorer version, model and adapter files, template, prompt, text), so a re-run,
an interrupted run, or a run that adds one adapter only does what is new, and a fully cached step never
loads a model.

    >>> ScoreCache.key("a", 1) == ScoreCache.key("a", 1) != ScoreCache.key("a", 2)
    True
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Generic, TypeVar

# Bump when scoring changes (prompts, stored fields) to invalidate caches. Not bumped when the score moved from
# 3-word to 2-word copied spans: version-2 pair and grid records carry both rules, and `copyrule.follow` reads
# them under the score's rule of today; a record without them (eval generate's older reads, a grid draft's own
# score) is scored again where it is read.
SCORER_VERSION = 2


class ScoreCache:
    """Append-only JSON Lines of {"key", "value"}; a torn last line (killed run) is skipped. path None: in memory."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self._data: dict[str, dict] = {}
        if self.path and self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self._data[rec["key"]] = rec["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    @staticmethod
    def key(*parts) -> str:
        return hashlib.sha256(json.dumps([SCORER_VERSION, *parts], ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put(self, key: str, value: dict) -> None:
        self._data[key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")


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
