"""The llama.cpp GGUF LoRA adapter format, as data (keys, tensor names, q/k row order), a writer and a reader.

    python -c "from finetune import lora_gguf as f; a = f.read('models/cqa/adapter.gguf'); print(a.base, a.r)"

What llama.cpp's own converter (convert_lora_to_gguf.py) writes and `llama --lora` loads, in this order:

| key                              | value                                                                  |
|----------------------------------|------------------------------------------------------------------------|
| general.architecture             | the base's (e.g. "llama")                                              |
| general.type                     | "adapter"                                                              |
| adapter.type                     | "lora"                                                                 |
| adapter.lora.alpha               | float32; llama.cpp scales lora_b @ lora_a by alpha / r                 |
| general.name                     | "CQA LoRA for <base name>"                                             |
| cqa.base.name / .sha256 / .file  | the base it was trained on (assistant/adapter_meta.py: the engine refuses another) |

Tensors: for each adapted base weight `blk.N.<name>.weight` (names from gguf-py's tensor-name map), two:
`blk.N.<name>.weight.lora_a` (r x in, peft's lora_A) and `.lora_b` (out x r, peft's lora_B), f16 or f32,
in the order of the HF module names (GGUF lists dims reversed: lora_a's ne is (in, r)).

    >>> tensor_name("blk.0.attn_q.weight", LORA_B)
    'blk.0.attn_q.weight.lora_b'

Row order: for llama-architecture models the HF->GGUF conversion permutes the rows of q_proj and k_proj
(rotary pairs (i, i + d/2) of each head become adjacent rows) and transformers' GGUF loader undoes it, so an
adapter trained in transformers is in HF row order: lora_b of attn_q/attn_k gets the same permutation here
(`permute_rows`, with the head counts of PERMUTED). Without it llama.cpp applies a different adapter.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from assistant import adapter_meta
from assistant.errors import BadAdapter

from .errors import ExportError
from .files import write_gguf

# ---- the format as data -----------------------------------------------------------------------
KEY_ARCH = gguf.Keys.General.ARCHITECTURE      # "general.architecture"
KEY_GENERAL_TYPE = gguf.Keys.General.TYPE      # "general.type"
KEY_ADAPTER_TYPE = gguf.Keys.Adapter.TYPE      # "adapter.type"
KEY_ALPHA = gguf.Keys.Adapter.LORA_ALPHA       # "adapter.lora.alpha"
KEY_NAME = gguf.Keys.General.NAME              # "general.name"
GENERAL_TYPE = gguf.GGUFType.ADAPTER           # "adapter"
ADAPTER_TYPE = "lora"
NAME_FORMAT = "CQA LoRA for {base}"
# The base the adapter was trained on; the key strings live in assistant/adapter_meta.py (the engine's side).
BASE_KEYS = {"name": adapter_meta.KEY_BASE_NAME, "sha256": adapter_meta.KEY_BASE_SHA256,
             "file": adapter_meta.KEY_BASE_FILE}
LORA_A, LORA_B = "lora_a", "lora_b"            # tensor name suffixes after the base tensor's name
DTYPES = {"f16": np.float16, "f32": np.float32}
STORED = (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32)   # DTYPES as GGUF tensor types
QK_PERMUTED_ARCHS = {"llama"}   # archs whose convert_hf_to_gguf permutes q/k rows (transformers undoes it)
PERMUTED = {gguf.MODEL_TENSOR.ATTN_Q: "n_head", gguf.MODEL_TENSOR.ATTN_K: "n_head_kv"}   # -> BaseInfo field


def tensor_name(base_tensor: str, part: str) -> str:
    """The adapter tensor for one LoRA matrix (`part` LORA_A or LORA_B) of the base weight `base_tensor`."""
    return f"{base_tensor}.{part}"


def adapter_name(base_name: str) -> str:
    return NAME_FORMAT.format(base=base_name)


def permute_rows(x: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k projection (or its lora_B) from HF order to llama.cpp's GGUF order.

    Within each head of d rows, row i and row i + d/2 (a rotary pair) become neighbours:

    >>> permute_rows(np.arange(8), 1).tolist()
    [0, 4, 1, 5, 2, 6, 3, 7]
    >>> permute_rows(np.arange(8), 2).tolist()
    [0, 2, 1, 3, 4, 6, 5, 7]
    """
    return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


# ---- what the format needs from the base GGUF ---------------------------------------------------
@dataclass(frozen=True)
class BaseInfo:
    path: Path
    arch: str
    n_blocks: int
    n_head: int
    n_head_kv: int

    @classmethod
    @functools.lru_cache(maxsize=4)
    def read(cls, path: Path) -> "BaseInfo":
        r = gguf.GGUFReader(str(path), "r")

        def get(key):
            f = r.get_field(key)
            if f is None:
                raise ExportError(f"{path} lacks the GGUF key {key}: is it a base model GGUF?")
            return f.contents()
        arch = get(KEY_ARCH)
        head = int(get(gguf.Keys.Attention.HEAD_COUNT.format(arch=arch)))
        kv = r.get_field(gguf.Keys.Attention.HEAD_COUNT_KV.format(arch=arch))
        return cls(Path(path), arch, int(get(gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch))), head,
                   int(kv.contents()) if kv else head)

    def name_map(self) -> gguf.TensorNameMap:
        archs = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
        if self.arch not in archs:
            raise ExportError(f"gguf-py does not know the architecture {self.arch!r}: upgrade the gguf package")
        return gguf.get_tensor_name_map(archs[self.arch], self.n_blocks)


def gguf_tensors(pairs: dict[str, tuple[np.ndarray, np.ndarray]], base: BaseInfo,
                 permute: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """HF module name -> (lora_A, lora_B), to GGUF base tensor name (blk.N.attn_q.weight) -> (lora_a, lora_b)
    with lora_b's rows in GGUF order, sorted by module name (the file's tensor order).

    `permute=False` leaves q/k rows in HF order: wrong, and kept only so a test can show it matters.
    """
    names = base.name_map()
    permuted = permute and base.arch in QK_PERMUTED_ARCHS
    out = {}
    for module, (a, b) in sorted(pairs.items()):
        found = names.get_type_and_name(module)
        if found is None:
            raise ExportError(f"no GGUF tensor for the adapted module {module!r} in gguf-py's map for {base.arch}")
        kind, name = found
        if permuted and kind in PERMUTED:
            b = permute_rows(b, getattr(base, PERMUTED[kind]))
        out[f"{name}.weight"] = (a, b)
    return out


# ---- the adapter file -------------------------------------------------------------------------
@dataclass(frozen=True)
class LoraAdapter:
    arch: str
    alpha: float
    name: str
    base: dict[str, str]                                 # {"name", "sha256", "file"}: BASE_KEYS' fields
    tensors: dict[str, tuple[np.ndarray, np.ndarray]]   # base tensor -> (lora_a r x in, lora_b out x r)

    @property
    def r(self) -> int:
        return next(iter(self.tensors.values()))[0].shape[0] if self.tensors else 0


def write(adapter: LoraAdapter, out: Path) -> Path:
    """Write `adapter` to `out` atomically; empty strings are left out (gguf-py's add_string)."""
    w = gguf.GGUFWriter(None, adapter.arch)          # general.architecture first
    w.add_string(KEY_GENERAL_TYPE, GENERAL_TYPE)
    w.add_string(KEY_ADAPTER_TYPE, ADAPTER_TYPE)
    w.add_float32(KEY_ALPHA, float(adapter.alpha))
    w.add_string(KEY_NAME, adapter.name)
    for field, key in BASE_KEYS.items():
        w.add_string(key, adapter.base.get(field, ""))
    for name, (a, b) in adapter.tensors.items():
        w.add_tensor(tensor_name(name, LORA_A), np.ascontiguousarray(a))
        w.add_tensor(tensor_name(name, LORA_B), np.ascontiguousarray(b))
    return write_gguf(w, Path(out))


def read(path: Path) -> LoraAdapter:
    """The adapter at `path` (tensors as stored, in file order); BadAdapter when it is not a LoRA adapter."""
    try:
        r = gguf.GGUFReader(str(path), "r")
    except Exception as e:  # noqa: BLE001 - gguf raises ValueError/struct.error/... on bad files
        raise BadAdapter(f"{path} is not a readable GGUF adapter: {e}") from e

    def get(key, default=None):
        f = r.get_field(key)
        return default if f is None else f.contents()
    if (get(KEY_GENERAL_TYPE), get(KEY_ADAPTER_TYPE)) != (GENERAL_TYPE, ADAPTER_TYPE):
        raise BadAdapter(f"{path} is not a LoRA adapter ({KEY_GENERAL_TYPE} {get(KEY_GENERAL_TYPE)!r}, "
                         f"{KEY_ADAPTER_TYPE} {get(KEY_ADAPTER_TYPE)!r}): export one with `python -m finetune export`")
    if get(KEY_ALPHA) is None:
        raise BadAdapter(f"{path} lacks {KEY_ALPHA}: re-export it with `python -m finetune export`")
    parts: dict[str, dict[str, np.ndarray]] = {}
    for t in r.tensors:
        base_tensor, _, part = t.name.rpartition(".")
        if part not in (LORA_A, LORA_B) or t.tensor_type not in STORED:
            raise BadAdapter(f"{path}: tensor {t.name} ({t.tensor_type.name}) is not an f16/f32 {LORA_A} "
                             f"or {LORA_B} matrix")
        parts.setdefault(base_tensor, {})[part] = np.array(t.data)   # a copy: the file can be closed
    unpaired = [n for n, p in parts.items() if len(p) != 2]
    if unpaired:
        raise BadAdapter(f"{path}: {unpaired[0]} lacks its {LORA_A} or {LORA_B} tensor")
    base = {field: get(key) for field, key in BASE_KEYS.items() if get(key) is not None}
    return LoraAdapter(get(KEY_ARCH), float(get(KEY_ALPHA)), get(KEY_NAME, ""), base,
                       {n: (p[LORA_A], p[LORA_B]) for n, p in parts.items()})
