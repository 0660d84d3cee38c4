"""GGUF metadata keys that tie a LoRA adapter to the base it was trained on (one place).

The finetune export writes them; the engine reads them before loading an adapter so a
mismatch is a clear error instead of silent garbage.
"""
from __future__ import annotations

from pathlib import Path

from .errors import BadAdapter

KEY_BASE_NAME = "cqa.base.name"
KEY_BASE_SHA256 = "cqa.base.sha256"
KEY_BASE_FILE = "cqa.base.file"


def read_adapter_base(path: Path) -> dict | None:
    """{'name', 'sha256', 'file'} from an adapter GGUF, or None when it carries none."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path), "r")
    except Exception as e:  # noqa: BLE001 - gguf raises ValueError/struct.error/... on bad files
        raise BadAdapter(f"{path} is not a readable GGUF adapter: {e}") from e
    out = {}
    for key, name in ((KEY_BASE_NAME, "name"), (KEY_BASE_SHA256, "sha256"), (KEY_BASE_FILE, "file")):
        field = reader.get_field(key)
        if field is not None:
            out[name] = field.contents()
    return out or None
