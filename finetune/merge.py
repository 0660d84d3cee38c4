"""Base GGUF + LoRA adapter -> one standalone GGUF (f16 or f32), then llama.cpp's quantizer.

    python -m finetune export --merge --quant Q8_0,Q4_K_M

The merge happens in GGUF space: every base tensor is dequantized with gguf-py, and
scale x lora_b @ lora_a (the same tensors, names and q/k row order as the adapter export) is
added to the weights it adapts; metadata is copied from the base. Quantized variants are
written from that file by llama.cpp itself (`llama_cpp.llama_model_quantize`).
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from pathlib import Path

import numpy as np

from assistant import atomic

from .errors import ExportError
from .files import write_gguf
from .lora_gguf import BaseInfo, gguf_tensors
from .peft_lora import PeftLora

log = logging.getLogger(__name__)

MERGED_DTYPES = {"f16": np.float16, "f32": np.float32}
QUANT_TYPES = ("Q8_0", "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K", "Q4_0")   # llama_cpp.LLAMA_FTYPE_MOSTLY_<name>


def merge(base_path: Path, adapter_dir: Path, out: Path, dtype: str = "f16", name_suffix: str = " + CQA") -> Path:
    """Write base + adapter as a standalone GGUF at `out` (2-D weights in `dtype`, norms in f32)."""
    import gguf

    base = BaseInfo.read(base_path)
    lora = PeftLora.read(adapter_dir)
    deltas = {name: (lora.scale * (b @ a)).astype(np.float32)
              for name, (a, b) in gguf_tensors(lora.pairs, base).items()}
    reader = gguf.GGUFReader(str(base_path), "r")
    w = gguf.GGUFWriter(None, base.arch)
    file_type = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (gguf.Keys.General.ARCHITECTURE,
                                                             gguf.Keys.General.FILE_TYPE, gguf.Keys.General.NAME,
                                                             gguf.Keys.General.QUANTIZATION_VERSION):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    name = reader.get_field(gguf.Keys.General.NAME)
    w.add_name((name.contents() if name else base_path.stem) + name_suffix)
    w.add_file_type(file_type)
    used = set()
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        if t.name in deltas:
            if deltas[t.name].shape != data.shape:
                raise ExportError(f"adapter tensor for {t.name} has shape {deltas[t.name].shape}, the base "
                                  f"{data.shape}: this adapter was not trained for {base_path.name}")
            data = data + deltas[t.name]
            used.add(t.name)
        keep_f32 = data.ndim == 1 or dtype == "f32"
        w.add_tensor(t.name, np.ascontiguousarray(data, dtype=np.float32 if keep_f32 else MERGED_DTYPES[dtype]))
    missing = set(deltas) - used
    if missing:
        raise ExportError(f"the base {base_path.name} has no tensor(s) {sorted(missing)[:3]} that the adapter adapts")
    return write_gguf(w, Path(out))


def quantize(src: Path, out: Path, kind: str, threads: int = 0) -> Path:
    """llama.cpp's quantizer: `src` (f16/f32 GGUF) -> `out` in `kind` (e.g. Q8_0, Q4_K_M)."""
    try:
        import llama_cpp
    except ImportError as e:
        raise ExportError("quantizing needs llama-cpp-python: pip install llama-cpp-python") from e
    if kind not in QUANT_TYPES:
        raise ExportError(f"unknown quantization {kind!r}; choose from {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = threads or os.cpu_count() or 1
    with atomic.atomic_path(out) as tmp:
        with _quiet():   # llama.cpp prints a line per tensor on the C streams
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or tmp.stat().st_size == 0:
            raise ExportError(f"llama.cpp could not quantize {src} to {kind} (code {rc})")
    return out


@contextlib.contextmanager
def _quiet():
    """Send the process's stdout/stderr file descriptors to /dev/null for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
