"""File helpers shared by train, export, merge and hub: atomic JSON, GGUF and folder writes; hashes.

    >>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"a": 1}); read_json(p)
    {'a': 1}
    >>> with atomic_dir(p.parent / "run") as tmp:
    ...     _ = (tmp / "a.txt").write_text("whole")
    >>> sorted(q.name for q in p.parent.iterdir()), (p.parent / "run" / "a.txt").read_text()
    (['run', 'x.json'], 'whole')

Files are written with the project's one atomic write (`assistant.atomic`: temp file beside, fsync,
replace, cleanup on error); `write_json` here is that, kept as the name train/export/crosscheck use.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from assistant import atomic
from assistant.catalog import file_sha256


def write_json(path: Path, data) -> None:
    """JSON with 2-space indent and a final newline, written atomically: readers never see half a file."""
    atomic.write_json(path, data)


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    """The catalog's hash (cached by path, size and mtime), so a file is read once per process."""
    return file_sha256(Path(path))


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


def write_gguf(writer, out: Path) -> Path:
    """Write a gguf-py GGUFWriter made without a path (`GGUFWriter(None, arch)`) to `out`, atomically."""
    with atomic.atomic_path(out) as tmp:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(out)
