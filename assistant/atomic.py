"""Atomic file writes, one way for the whole project: a temp file in the same folder, fsync, replace.

    >>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = write_json(p, {"a": 1}); p.read_text()
    '{\\n  "a": 1\\n}\\n'
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> p.read_text(), sorted(q.name for q in p.parent.iterdir())
    ('whole', ['x.json'])

A reader sees the old file or the new one, never half of one; on any error the temp file is removed
and the old file is left as it was. The temp name is unique (two writers never share one).
`atomic_dir` does the same for a whole folder (an epoch's adapter, a staged upload).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temp path beside `path`; when the block ends without error, fsync it and rename it
    over `path` (for writers that want a path: gguf-py, torch.save, a subprocess)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(_new_file_mode())   # mkstemp makes 0600; a written file gets the usual mode (0644 under umask 022)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a fresh, empty temp folder beside `path`; when the block ends without error it replaces `path`
    (an epoch's peft adapter, a staged Hub folder). On error the temp folder goes and `path` is untouched.

    A folder cannot be renamed over another, so an old `path` is first renamed aside, then removed:
    a reader sees the old folder, none, or the new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_UMASK)   # mkdtemp makes 0700; a written folder gets the usual mode
    old = None
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)      # onto the empty folder just made: a rename, not a copy
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)      # put the old folder back
        elif old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data, *, indent: int | None = 2, ensure_ascii: bool = True) -> Path:
    return write_text(path, json.dumps(data, indent=indent, ensure_ascii=ensure_ascii) + "\n")


def _read_umask() -> int:
    umask = os.umask(0o022)   # read once at import (os.umask is process-wide: never toggled while threads write)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _new_file_mode() -> int:
    return 0o666 & ~_UMASK


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
