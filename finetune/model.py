"""The base model in transformers, dequantized from the same GGUF that llama.cpp serves, plus LoRA.

    python -c "from finetune.model import load_base; print(load_base('smollm2-135m')[0].config)"

transformers reads the GGUF itself (`from_pretrained(folder, gguf_file=name)`), dequantizes every
tensor to float32 and undoes llama.cpp's q/k row permutation, so the adapter is trained against
exactly the weights llama.cpp uses. The first load takes ~20-40 s (tokenizer conversion).
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from assistant import catalog

from .errors import ConfigError

log = logging.getLogger(__name__)


def resolve_base(name: str) -> catalog.ResolvedModel:
    return catalog.resolve(name)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = cuda but torch sees no CUDA GPU: set device = auto or cpu")
    return device


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_base(name_or_path: str | Path, device: str = "cpu"):
    """(model, tokenizer, ResolvedModel): float32 weights dequantized from the GGUF."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    resolved = resolve_base(str(name_or_path))
    path = resolved.path
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the GGUF loader warns about every unused metadata key
    hf_logging.disable_progress_bar()
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    bar = gguf_utils.tqdm   # its per-tensor bar ignores disable_progress_bar()
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        tokenizer = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    finally:
        gguf_utils.tqdm = bar
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    model.config.use_cache = False
    return model.to(device), tokenizer, resolved


def add_lora(model, r: int, alpha: float, dropout: float, targets, seed: int, init_b: bool = True):
    """Wrap `model` with fresh LoRA adapters (lora_B = 0 unless init_b is False: random, for tests)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                     bias="none", task_type="CAUSAL_LM", init_lora_weights=True if init_b else False)
    return get_peft_model(model, cfg)


def load_adapter(model, adapter_dir: Path):
    """Base model + a saved peft adapter (for comparisons and merging)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir))
