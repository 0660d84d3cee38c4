"""Loaded models for a server: one Engine per (base, adapter), loaded on first use, shared by users.

Variants the UI offers: the base, and the base + CQA adapter (models/cqa/adapter.gguf)
when that file exists. Each Engine carries its own lock.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

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
    adapter: Path | None = None       # CQA adapter; None = models/cqa/adapter.gguf when present
    n_threads: int | None = None      # None = all cores
    n_ctx: int = DEFAULT_N_CTX


class Pool:
    def __init__(self, config: PoolConfig = PoolConfig()):
        self.config = config
        self._engines: dict[str, Engine] = {}
        self._loading = threading.Lock()

    def adapter_path(self) -> Path | None:
        """The adapter the CQA variant uses: one asked for (config, $CQA_ADAPTER) must exist; the shipped
        models/cqa/adapter.gguf is used when present; None when there is none."""
        asked = self.config.adapter or (Path(os.environ["CQA_ADAPTER"]) if os.environ.get("CQA_ADAPTER") else None)
        if asked is not None:
            if not asked.is_file():
                raise ValueError(f"CQA adapter {asked} does not exist")
            return asked
        return CQA_ADAPTER if CQA_ADAPTER.is_file() else None

    def variants(self) -> list[str]:
        return [BASE_LABEL] + ([CQA_LABEL] if self.adapter_path() else [])

    def get(self, variant: str = BASE_LABEL) -> Engine:
        if variant not in (BASE_LABEL, CQA_LABEL):
            raise ValueError(f"unknown variant {variant!r}: choose one of {self.variants()}")
        with self._loading:
            if variant not in self._engines:
                lora = self.adapter_path() if variant == CQA_LABEL else None
                if variant == CQA_LABEL and lora is None:
                    raise ValueError("no CQA adapter found at models/cqa/adapter.gguf: build one with "
                                     "`python -m finetune train` and `python -m finetune export`")
                self._engines[variant] = Engine.load(self.config.model, lora_path=lora,
                                                     n_threads=self.config.n_threads, n_ctx=self.config.n_ctx)
            return self._engines[variant]
