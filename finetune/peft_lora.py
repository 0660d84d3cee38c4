"""A trained peft LoRA adapter folder (adapter_config.json + adapter_model.safetensors), read as numpy.

    python -c "from finetune.peft_lora import PeftLora; print(PeftLora.read('finetune/runs/cqa/epochs/epoch-6').r)"

peft scales lora_B @ lora_A by alpha / r (alpha / sqrt(r) with rsLoRA); llama.cpp always by alpha / r,
so the alpha written to the GGUF is scale x r:

    >>> PeftLora(r=16, scale=2.0, pairs={}).alpha
    32.0
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ExportError

PEFT_PREFIX = "base_model.model."   # peft's prefix before the HF module name
PARTS = ("lora_A", "lora_B")        # peft's names of the two matrices


@dataclass(frozen=True)
class PeftLora:
    r: int
    scale: float                                       # peft's scaling: alpha / r (or alpha / sqrt(r))
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]   # HF module name -> (lora_A r x in, lora_B out x r)

    @property
    def alpha(self) -> float:
        """The alpha llama.cpp needs to apply the same scale (it uses alpha / r)."""
        return self.scale * self.r

    @classmethod
    def read(cls, folder: Path) -> "PeftLora":
        from safetensors.numpy import load_file

        folder = Path(folder)
        cfg_path, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
        if not (cfg_path.is_file() and weights.is_file()):
            raise ExportError(f"{folder} is not a peft adapter folder (needs adapter_config.json and "
                              "adapter_model.safetensors): run `python -m finetune train` first")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
            raise ExportError(f"{folder}: per-module ranks or alphas are not supported by this export")
        r = int(cfg["r"])
        scale = cfg["lora_alpha"] / (math.sqrt(r) if cfg.get("use_rslora") else r)
        parts: dict[str, dict] = {}
        for key, value in load_file(str(weights)).items():
            for part in PARTS:
                tail = f".{part}.weight"
                if key.endswith(tail):
                    module = key[: -len(tail)].removeprefix(PEFT_PREFIX)
                    parts.setdefault(module, {})[part] = value.astype(np.float32)
                    break
            else:
                raise ExportError(f"{folder}: unexpected tensor {key} (only LoRA A/B matrices can be exported)")
        pairs = {m: (p["lora_A"], p["lora_B"]) for m, p in parts.items()}
        return cls(r, scale, pairs)
