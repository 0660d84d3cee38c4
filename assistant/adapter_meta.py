"""GGUF metadata keys that tie a LoRA adapter to the base it was trained on (one place).

The finetune export writes them; the engine calls `check_adapter` before loading an adapter, so a
mismatch is a clear error instead of silent garbage.
"""
from __future__ import annotations

from pathlib import Path

from .catalog import check_gguf
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


def check_adapter(lora: Path, model) -> None:
    """Refuse an adapter made for another base (a catalog.ResolvedModel), when the adapter's metadata says
    which base; a file that is not GGUF is refused too."""
    check_gguf(lora)
    base = read_adapter_base(lora)
    if base is None:
        return
    if base.get("sha256") and base["sha256"] != model.base_sha256:
        raise BadAdapter(f"adapter {lora} was trained for base {base.get('name', '?')} "
                         f"(sha256 {base['sha256'][:12]}…) but {model.name} (sha256 {model.base_sha256[:12]}…) "
                         "is loaded: load the matching base, or retrain with `python -m finetune train`")
