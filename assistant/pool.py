"""The models a server offers: the weights loaded once, the base and CQA as variants of them.

Variants the UI offers: the base, and the base + CQA adapter (models/cqa/adapter.gguf) when that file
exists, at a strength (LoRA scale 0-2). Every variant shares one llama.cpp context and its lock:
memory is one model's, and a draft of one variant never reuses cells of another.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from . import catalog
from .engine import DEFAULT_N_CTX, Engine

log = logging.getLogger(__name__)

CQA_ADAPTER = Path(__file__).resolve().parent.parent / "models" / "cqa" / "adapter.gguf"
BASE_LABEL = "base"
CQA_LABEL = "CQA"
# New tokens per draft unless the user says otherwise. A CQA-tuned model writes its notes first (about
# 500 tokens on the corpus, up to ~650) and then the passage (~280, up to ~370): 200 would end in the notes.
DEFAULT_MAX_TOKENS = {BASE_LABEL: 200, CQA_LABEL: 1024}


@dataclass(frozen=True)
class PoolConfig:
    model: str | None = None          # catalog name / path / hub file; None = embedded default
    adapter: Path | str | None = None  # CQA adapter: a .gguf path or a Hub repo OWNER/NAME; None = the shipped one
    n_threads: int | None = None      # None = all cores
    n_ctx: int = DEFAULT_N_CTX
    cqa: bool = True                  # False: offer the base alone, even when an adapter is there


class Pool:
    def __init__(self, config: PoolConfig = PoolConfig()):
        self.config = config
        self._base: Engine | None = None
        self._variants: dict[tuple, Engine] = {}
        self._loading = threading.Lock()

    def adapter_path(self) -> Path | None:
        """The adapter the CQA variant uses: one asked for (config, $CQA_ADAPTER) must exist; the shipped
        models/cqa/adapter.gguf is used when present; None when there is none (or CQA is switched off)."""
        if not self.config.cqa:
            return None
        asked = self.config.adapter or os.environ.get("CQA_ADAPTER") or None
        if asked is not None:
            path = catalog.resolve_adapter(asked)   # a local file, or OWNER/NAME on the Hub (cached)
            if not path.is_file():
                raise ValueError(f"CQA adapter {asked} does not exist")
            return path
        return CQA_ADAPTER if CQA_ADAPTER.is_file() else None

    def variants(self) -> list[str]:
        return [BASE_LABEL] + ([CQA_LABEL] if self.adapter_path() else [])

    def get(self, variant: str = BASE_LABEL, strength: float = 1.0) -> Engine:
        """The engine for a variant (CQA at `strength`); the weights load on first use."""
        if variant not in (BASE_LABEL, CQA_LABEL):
            raise ValueError(f"unknown variant {variant!r}: choose one of {self.variants()}")
        with self._loading:
            lora = self.adapter_path() if variant == CQA_LABEL else None
            if self._base is None:
                self._base = Engine.load(self.config.model, n_threads=self.config.n_threads, n_ctx=self.config.n_ctx)
            if variant == BASE_LABEL:
                return self._base
            if lora is None:
                raise ValueError("no CQA adapter found at models/cqa/adapter.gguf: build one with "
                                 "`python -m finetune train` and `python -m finetune export`")
            key = (lora, float(strength))
            if key not in self._variants:
                self._variants[key] = self._base.variant(lora, strength)
            return self._variants[key]
