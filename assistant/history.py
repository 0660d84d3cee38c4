"""Versions of a draft (or of a pasted text) by id, for the revision tools: what a draft id names, and Undo.

    >>> store = History()
    >>> key = store.new("first")
    >>> store.push(key, "second")
    >>> store.current(key), store.undo(key), store.current(key)
    ('second', 'first', 'first')
    >>> store.undo(key)
    Traceback (most recent call last):
    ...
    assistant.errors.BadInput: nothing to undo: this is the first version of the draft

A draft id names a stack of versions: a new draft or a scored text starts one, a rewrite from a token or an
inserted sentence pushes a version, Undo pops back to the one before. The page and the API share one store
in the server's memory, bounded (the least recently used ids go first), so an id from a restarted or long
idle server is unknown: that is one clear message ("write or score the text again"), not a crash.
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .errors import BadInput

MAX_IDS = 512          # drafts kept; the least recently used go first
MAX_VERSIONS = 32      # versions per draft kept for Undo; the oldest go first


@dataclass
class _Stack:
    versions: list = field(default_factory=list)


class History:
    def __init__(self, max_ids: int = MAX_IDS, max_versions: int = MAX_VERSIONS):
        self._ids: OrderedDict[str, _Stack] = OrderedDict()
        self._lock = threading.Lock()
        self.max_ids, self.max_versions = max_ids, max_versions

    def new(self, version: Any) -> str:
        """Start a draft id with its first version."""
        key = secrets.token_hex(6)
        with self._lock:
            self._ids[key] = _Stack([version])
            while len(self._ids) > self.max_ids:
                self._ids.popitem(last=False)
        return key

    def _stack(self, key) -> _Stack:
        if not isinstance(key, str) or key not in self._ids:
            raise BadInput(f"draft id {key!r} is unknown or has expired (the server keeps the last {self.max_ids} "
                           "drafts, and forgets them when it restarts): write or score the text again")
        self._ids.move_to_end(key)
        return self._ids[key]

    def current(self, key: str) -> Any:
        with self._lock:
            return self._stack(key).versions[-1]

    def push(self, key: str, version: Any) -> None:
        """A new version of the draft (a rewrite, an inserted sentence); Undo goes back from it."""
        with self._lock:
            versions = self._stack(key).versions
            versions.append(version)
            del versions[:-self.max_versions]

    def undo(self, key: str) -> Any:
        """Drop the current version; the one before it becomes current and is returned."""
        with self._lock:
            versions = self._stack(key).versions
            if len(versions) < 2:
                raise BadInput("nothing to undo: this is the first version of the draft")
            versions.pop()
            return versions[-1]

    def depth(self, key: str) -> int:
        """How many versions the draft has (1: nothing to undo)."""
        with self._lock:
            return len(self._stack(key).versions)
