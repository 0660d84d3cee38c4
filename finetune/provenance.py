"""What a run was made with: library versions and the device, for run.json and the manifest.

    python -c "from finetune.provenance import versions; print(versions())"
"""
from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "gguf", "llama_cpp_python", "numpy"):
        try:
            out[pkg] = md.version(pkg.replace("_", "-"))
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def device_name(device: str) -> str:
    """The GPU model for cuda; the CPU model and core count otherwise."""
    if device == "cuda":
        import torch
        return torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError):  # no /proc/cpuinfo (macOS, Windows): the platform's name below
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    return platform.processor() or "cpu"
