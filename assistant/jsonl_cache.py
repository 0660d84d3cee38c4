"""An append-only JSON Lines cache of {"key", "value"}: what makes a long job (an eval, a sampling run) safe to kill
and re-run. Keys are the sha256 of a version and the parts that made the value; a torn last line is skipped.

    >>> c = JsonlCache(None, version=1)
    >>> k = c.key("draft", 3); c.put(k, {"text": "x"}); c.get(k), c.get(c.key("draft", 4))
    ({'text': 'x'}, None)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


class JsonlCache:
    """`path` None: in memory only. `version` is hashed into every key (bump it to invalidate); `sort_keys` sorts
    dict parts before hashing (a cache's keys must keep the rule they were written with)."""

    def __init__(self, path: str | Path | None, version: int, sort_keys: bool = False):
        self.path = Path(path) if path else None
        self.version, self.sort_keys = version, sort_keys
        self._data: dict[str, object] = {}
        if self.path and self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self._data[rec["key"]] = rec["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    def key(self, *parts) -> str:
        return hashlib.sha256(json.dumps([self.version, *parts], ensure_ascii=False,
                                         sort_keys=self.sort_keys).encode()).hexdigest()

    def get(self, key: str):
        return self._data.get(key)

    def put(self, key: str, value) -> None:
        self._data[key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._data)
