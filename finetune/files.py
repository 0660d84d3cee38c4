"""Small file helpers shared by train and export: atomic JSON and GGUF writes, hashes.

    >>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"a": 1}); read_json(p)
    {'a': 1}
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from assistant.catalog import file_sha256


def write_json(path: Path, data) -> None:
    """Write to a temp file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    """The catalog's hash (cached by path, size and mtime), so a file is read once per process."""
    return file_sha256(Path(path))


def finish_gguf(writer, tmp: Path, out: Path) -> Path:
    """Write a gguf-py GGUFWriter's header, metadata and tensors to `tmp`, then rename it to `out`."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out
