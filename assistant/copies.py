"""A faster copy of a model's weights, made here from the packaged file (gguf-py), never downloaded.

    >>> m = catalog.resolve()                                              # doctest: +SKIP
    >>> copy = served(m, "F16", cache_dir)      # first use: ~seconds, then cached   # doctest: +SKIP
    >>> copy.path, copy.sha256, copy.base_sha256 == m.sha256               # doctest: +SKIP

llama.cpp's CPU kernels batch well for some weight types and poorly for others (bench/engine.py): the
shipped Q4_1 costs nearly a whole step per extra sequence, F16 far less. F16, BF16 and F32 copies are
dequantizations of the Q4_1 weights (every tensor of the file, rounded to the copy's type; F32 exactly);
Q8_0 requantizes them. Which copy the app serves is decided by a measured gate (eval/fidelity.py: a copy
must score at least as close to transformers fp32 on the dequantized weights as the shipped file does, for
the base and both adapters) and a speed rule (README): `defaults.CURRENT.weights`.

A copy lives in `<cache>/copies/<first 16 hex of the source sha256>-<TYPE>.gguf` with a JSON record beside
it (its sha256, the source's, the seconds it took); it is written whole and renamed into place, so an
interrupted build leaves nothing half-made. It records the source's sha256 in its metadata
(`cqa.copy_of.sha256`), so adapters trained for the source load on the copy (catalog.ResolvedModel.base_sha256).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from . import atomic, catalog
from .errors import BadInput, BadModelFile

log = logging.getLogger(__name__)

SHIPPED = "shipped"        # serve the packaged file itself
TYPES = ("F32", "F16", "BF16", "Q8_0")
FLASH = "+FA"              # a serving spec's suffix: the same weights with llama.cpp's flash attention on
KEY_COPY_OF = "cqa.copy_of.sha256"
KEY_FILE_TYPE = "general.file_type"
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}    # llama.cpp's LLAMA_FTYPE values
SKIP_KEYS = ("GGUF.", "general.architecture", KEY_FILE_TYPE, KEY_COPY_OF)   # written by the writer / by us


def parse(spec: str) -> tuple[str, bool]:
    """A serving spec -> (the weights: SHIPPED or a copy type, flash attention on?).

    >>> parse("BF16+FA"), parse("shipped")
    (('BF16', True), ('shipped', False))
    """
    weights, flash = (spec[: -len(FLASH)], True) if spec.endswith(FLASH) else (spec, False)
    if weights not in (SHIPPED, *TYPES):
        raise BadInput(f"weights: {spec!r} is not one of {SHIPPED}, {', '.join(TYPES)}, each optionally with "
                       f"{FLASH} (flash attention), e.g. BF16{FLASH}")
    return weights, flash


def served(model: catalog.ResolvedModel, weights: str, cache_dir: Path) -> catalog.ResolvedModel:
    """The model to load for a weights setting: the file itself (SHIPPED), or its copy of that type, made now
    if it is not in the cache yet. A FLASH suffix is the engine's business (Engine.load); the file is the same."""
    weights, _ = parse(weights)
    if weights == SHIPPED:
        return model
    path = make(model.path, weights, Path(cache_dir) / "copies", model.sha256)
    return catalog.ResolvedModel(model.name, path, base_sha256_=model.sha256)


def make(src: Path, kind: str, folder: Path, src_sha256: str | None = None) -> Path:
    """The `kind` copy of GGUF `src` in `folder`: cached when it exists with its record, else written now."""
    src_sha256 = src_sha256 or catalog.file_sha256(src)
    out = folder / f"{src_sha256[:16]}-{kind}.gguf"
    record = out.with_suffix(".json")
    if out.exists() and record.exists():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    try:
        with atomic.atomic_path(out) as tmp:
            write_copy(src, kind, tmp, src_sha256)
    except (ValueError, OSError, KeyError) as e:
        raise BadModelFile(f"could not make the {kind} copy of {src} in {folder}: {e}") from e
    seconds = time.perf_counter() - t
    info = {"source": str(src), "source_sha256": src_sha256, "type": kind, "sha256": catalog.file_sha256(out),
            "seconds": round(seconds, 2), "bytes": out.stat().st_size}
    with atomic.atomic_path(record) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=1) + "\n")
    log.info("made the %s copy of %s in %.1f s: %s", kind, src.name, seconds, out)
    return out


def record(path: Path) -> dict:
    """The JSON record beside a copy (its sha256, its source's, the seconds it took)."""
    return json.loads(Path(path).with_suffix(".json").read_text())


def write_copy(src: Path, kind: str, out: Path, src_sha256: str) -> None:
    """Every metadata key of `src`, every tensor dequantized (float types kept as they are) and stored as `kind`."""
    import gguf

    reader = gguf.GGUFReader(str(src), "r")
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(str(out), arch=arch)
    for name, field in reader.fields.items():
        if name.startswith(SKIP_KEYS):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)
    writer.add_uint32(KEY_FILE_TYPE, FILE_TYPES[kind])
    writer.add_string(KEY_COPY_OF, src_sha256)
    target = getattr(gguf.GGMLQuantizationType, kind)
    for t in reader.tensors:
        shape = [int(x) for x in reversed(t.shape)]          # numpy order: the last dimension is ne0
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) and len(shape) == 1:
            writer.add_tensor(t.name, np.asarray(t.data).reshape(shape))   # norms: kept as they are
            continue
        x = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        if kind == "F32":
            writer.add_tensor(t.name, x)
        elif kind == "F16":
            writer.add_tensor(t.name, x.astype(np.float16))
        else:
            writer.add_tensor(t.name, gguf.quants.quantize(x, target), raw_dtype=target)   # bytes: shape implied
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
