"""The run settings every eval command shares, read once at the entry point and passed down.

    CQA_THREADS=1 CQA_CACHE=/tmp/cqa python -m eval pairs --out eval/out/pairs     # or --threads 1 --cache FILE

`eval/__main__.py` is the one place in eval/ that reads the environment (CQA_MODEL, CQA_THREADS, CQA_CACHE):
a flag wins over its variable, and everything below the entry point gets a `Settings`.

    >>> Settings(template="html", threads=-2)
    Traceback (most recent call last):
    ...
    assistant.errors.BadInput: --template 'html': use chat or plain; --threads -2: use 1 or more (0: all cores)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.catalog import DEFAULT_CACHE
from assistant.errors import BadInput

TEMPLATES = ("chat", "plain")
DEFAULT_CACHE_DIR = DEFAULT_CACHE                    # the app's cache folder too ($CQA_CACHE overrides both)
CACHE_FILE = "eval-scores.jsonl"                     # eval's score cache inside that folder


def default_cache_path(cache_dir: str | Path | None = None) -> Path:
    """The score cache in `cache_dir` (None: the default folder)."""
    return Path(cache_dir or DEFAULT_CACHE_DIR) / CACHE_FILE


@dataclass(frozen=True)
class Settings:
    model: str | None = None       # base model: catalog name or .gguf path (None: the catalog's default)
    template: str = "chat"         # prompt format, chat or plain; it changes the numbers, so it is reported
    threads: int | None = None     # llama.cpp CPU threads per engine (None or 0: all cores)
    cache: Path | None = None      # the score cache, JSON Lines (None: score everything afresh, keep nothing)
    progress: bool = True          # progress bars on stderr
    command: str | None = None     # the command line that ran, for the report (None: not run from a shell)

    def __post_init__(self):
        problems = []
        if self.template not in TEMPLATES:
            problems.append(f"--template {self.template!r}: use {' or '.join(TEMPLATES)}")
        if self.threads is not None and self.threads < 0:
            problems.append(f"--threads {self.threads}: use 1 or more (0: all cores)")
        if problems:
            raise BadInput("; ".join(problems))
        object.__setattr__(self, "threads", self.threads or None)
        object.__setattr__(self, "cache", Path(self.cache) if self.cache else None)
