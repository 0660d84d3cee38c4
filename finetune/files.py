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

import json
from pathlib import Path

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


atomic_dir = atomic.atomic_dir   # a whole folder (an epoch's adapter, a staged Hub folder)


def write_gguf(writer, out: Path) -> Path:
    """Write a gguf-py GGUFWriter made without a path (`GGUFWriter(None, arch)`) to `out`, atomically."""
    with atomic.atomic_path(out) as tmp:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(out)
