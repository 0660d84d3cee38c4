"""A GGUF LoRA adapter (what llama.cpp serves, e.g. models/cqa-passage/adapter.gguf) back into peft, so training
can start from it: the inverse of `finetune/export.py`'s write_adapter.

    python -c "from finetune.start_adapter import peft_pairs; print(len(peft_pairs('models/cqa-passage/adapter.gguf', BASE)))"

GGUF tensor `blk.N.<name>.weight.lora_a/b` -> HF module (gguf-py's name map, read backwards); lora_b rows of
attn_q/attn_k go back from llama.cpp's order to HF's (`unpermute_rows` undoes `lora_gguf.permute_rows`):

    >>> from finetune.lora_gguf import permute_rows
    >>> unpermute_rows(permute_rows(np.arange(8), 2), 2).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]

llama.cpp scales lora_b @ lora_a by alpha / r, and peft by lora_alpha / r (no rsLoRA), so lora_alpha = alpha.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import lora_gguf
from .config import PROJECTIONS
from .errors import ExportError

PEFT_KEY = "base_model.model.{module}.{part}.weight"   # peft's state-dict key of one LoRA matrix


def unpermute_rows(x: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k lora_b from llama.cpp's GGUF order back to HF order (inverse of lora_gguf.permute_rows)."""
    return x.reshape(n_head, x.shape[0] // n_head // 2, 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def peft_pairs(path: str | Path, base_path: str | Path, modules: list[str] | None = None) -> tuple[dict, float]:
    """({HF module name: (lora_A r x in, lora_B out x r) float32, HF row order}, alpha) of a GGUF adapter.
    `modules`: the HF module names to look for (default: the 7 projections of every block)."""
    adapter = lora_gguf.read(Path(path))
    base = lora_gguf.BaseInfo.read(Path(base_path))
    names = base.name_map()
    if modules is None:
        modules = [f"model.layers.{i}.{'self_attn' if p[0] in 'qkvo' else 'mlp'}.{p}"
                   for i in range(base.n_blocks) for p in PROJECTIONS]
    permuted = base.arch in lora_gguf.QK_PERMUTED_ARCHS
    out = {}
    for module in modules:
        found = names.get_type_and_name(module)
        if found is None:
            continue
        kind, name = found
        pair = adapter.tensors.get(f"{name}.weight")
        if pair is None:
            continue
        a, b = (np.asarray(t, dtype=np.float32) for t in pair)
        if permuted and kind in lora_gguf.PERMUTED:
            b = unpermute_rows(b, getattr(base, lora_gguf.PERMUTED[kind]))
        out[module] = (a, b)
    if len(out) != len(adapter.tensors):
        raise ExportError(f"{path}: {len(adapter.tensors) - len(out)} adapter tensor(s) match no module of the base "
                          f"{base_path}: was it made for another model?")
    return out, adapter.alpha


def load_trainable(model, path: str | Path, base_path: str | Path, dropout: float = 0.0):
    """Wrap `model` (a plain base model) with a peft LoRA holding the GGUF adapter's weights, trainable."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    pairs, alpha = peft_pairs(path, base_path)
    r = next(iter(pairs.values()))[0].shape[0]
    targets = sorted({m.rsplit(".", 1)[1] for m in pairs})
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    state = {}
    for module, (a, b) in pairs.items():
        state[PEFT_KEY.format(module=module, part="lora_A")] = torch.from_numpy(a.copy())
        state[PEFT_KEY.format(module=module, part="lora_B")] = torch.from_numpy(b.copy())
    result = set_peft_model_state_dict(peft_model, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ExportError(f"{path}: peft did not take {len(unexpected)} tensor(s), e.g. {unexpected[0]}")
    return peft_model
