"""The model variants an evaluation compares: the base, and the base with each --adapter NAME=PATH.

    python -m eval pairs --adapter epoch-1=finetune/runs/cqa/gguf/epoch-1.gguf cqa=OWNER/NAME --out eval/out/pairs

A variant carries the sha256 of its files: the score cache is keyed by them, so a re-trained adapter under
an old name is scored afresh, and a report says exactly which files it measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from assistant.errors import BadAdapter

BASE = "base"        # the name of the variant without an adapter


@dataclass(frozen=True)
class Variant:
    name: str                     # "base", or the NAME of --adapter NAME=PATH
    model: str                    # catalog name or path, as given to Engine.load
    model_path: str
    model_sha256: str
    adapter_path: str | None = None
    adapter_sha256: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "model": self.model, "model_path": self.model_path,
                "model_sha256": self.model_sha256, "adapter_path": self.adapter_path,
                "adapter_sha256": self.adapter_sha256}


def parse_adapters(specs: Iterable[str]) -> list[tuple[str, Path]]:
    """["epoch5=runs/e5.gguf", "hub=OWNER/NAME"] -> [("epoch5", Path(...)), ...]; names unique and not "base".
    OWNER/NAME is a Hub adapter repo (`python -m finetune push`), downloaded and cached. Every problem is
    listed in one BadAdapter."""
    from assistant import catalog
    out, problems = [], []
    for spec in specs or ():
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            problems.append(f"--adapter {spec!r}: write it as NAME=PATH, e.g. epoch5=finetune/runs/e5.gguf")
        elif name == BASE or name in {n for n, _ in out}:
            problems.append(f"--adapter {spec!r}: the name {name!r} is taken; give each adapter its own name")
        elif catalog.is_hub_repo(path):
            try:
                out.append((name, catalog.resolve_adapter(path)))
            except catalog.ModelUnavailable as e:
                problems.append(f"--adapter {spec!r}: {e}")
        elif not Path(path).is_file():
            problems.append(f"--adapter {spec!r}: {path} does not exist")
        else:
            out.append((name, Path(path)))
    if problems:
        raise BadAdapter("; ".join(problems))
    return out


def resolve_variants(model: str | None, adapters: list[tuple[str, Path]]) -> list[Variant]:
    """The base and one variant per adapter, with file sha256s (catalog errors pass through)."""
    from assistant import catalog

    resolved = catalog.resolve(model)
    common = dict(model=resolved.name, model_path=str(resolved.path), model_sha256=resolved.sha256)
    out = [Variant(BASE, **common)]
    for name, path in adapters:
        catalog.check_gguf(path)
        out.append(Variant(name, **common, adapter_path=str(path), adapter_sha256=catalog.file_sha256(path)))
    return out
