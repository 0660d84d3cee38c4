"""The models a server offers: the weights loaded once, the base and the tuned adapters as variants of them.

Variants the UI offers: the base; the base + CQA adapter (models/cqa/adapter.gguf), which reasons in notes
before its passage unless told to write at once; and the base + passage-only adapter
(models/cqa-passage/adapter.gguf, trained on the same corpus with the passage alone as the target), which
writes the passage at once. Each tuned variant exists when its file does, at a strength (LoRA scale 0-2).
Every variant shares one llama.cpp context and its lock: memory is one model's, and a draft of one variant
never reuses cells of another.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from . import catalog, copies, defaults, llama, probe
from .engine import DEFAULT_N_CTX, Engine
from .errors import BadAdapter, UnknownModel

log = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parent.parent / "models"
CQA_ADAPTER = MODELS / "cqa" / "adapter.gguf"
PASSAGE_ADAPTER = MODELS / "cqa-passage" / "adapter.gguf"
BASE_LABEL = "base"
CQA_LABEL = "CQA"
PASSAGE_LABEL = "CQA-passage"
TUNED = (CQA_LABEL, PASSAGE_LABEL)     # the variants with an adapter (and a strength)
# New tokens per draft unless the user says otherwise. A CQA-tuned model writes its notes first (about
# 500 tokens on the corpus, up to ~650) and then the passage (~280, up to ~370): 200 would end in the notes.
# The passage-only adapter writes the passage at once, like the base.
DEFAULT_MAX_TOKENS = {BASE_LABEL: 200, CQA_LABEL: 1024, PASSAGE_LABEL: 200}


def writes_notes(variant: str, reason_first: bool = True) -> bool:
    """The writer's `notes` flag for a variant: CQA reasons first only when asked; the passage-only adapter writes
    under the "Passage:" header at once (its training target, and how the generation grid measured it); the base
    writes as it likes (no header is added).

    >>> writes_notes(CQA_LABEL, False), writes_notes(PASSAGE_LABEL, True), writes_notes(BASE_LABEL, False)
    (False, False, True)
    """
    if variant == PASSAGE_LABEL:
        return False
    return bool(reason_first) or variant != CQA_LABEL


@dataclass(frozen=True)
class PoolConfig:
    model: str | None = None          # catalog name / path / hub file; None = embedded default
    adapter: Path | str | None = None  # CQA adapter: a .gguf path or a Hub repo OWNER/NAME; None = the shipped one
    n_threads: int | None = None      # None = all cores
    n_ctx: int = DEFAULT_N_CTX
    cqa: bool = True                  # False: offer the base alone, even when adapters are there
    passage_adapter: Path | str | None = None   # the passage-only adapter, likewise; None = the shipped one
    extra_bufts: str = "auto"         # llama.cpp's extra weight buffer types: auto (off on AMX CPUs), on, off
    probe: bool = False               # check the weight placement in a child process first (the app: True)
    cache_dir: Path = catalog.DEFAULT_CACHE   # assembled models, copies of the weights, the probe's answers
    weights: str | None = None        # the file itself ("shipped") or a copy (copies.TYPES), "+FA": flash attention; None: the measured
                                      # default (defaults.weights_for) for the embedded model, the file for others

    def __post_init__(self):
        if self.extra_bufts not in llama.EXTRA_BUFTS_MODES:
            llama.choose_extra_bufts(self.extra_bufts, "")   # raises the one clear error
        if self.weights is not None:
            copies.parse(self.weights)     # raises the one clear error


# variant -> (PoolConfig field, what to call it, its training config and models/ folder)
_ASKED = {CQA_LABEL: ("adapter", "CQA adapter", "cqa"),
          PASSAGE_LABEL: ("passage_adapter", "passage-only adapter", "cqa-passage")}


def shipped_adapter(variant: str) -> Path:
    """Where the repository keeps a tuned variant's adapter."""
    return {CQA_LABEL: CQA_ADAPTER, PASSAGE_LABEL: PASSAGE_ADAPTER}[variant]


class Pool:
    def __init__(self, config: PoolConfig = PoolConfig()):
        self.config = config
        self._base: Engine | None = None
        self._variants: dict[tuple, Engine] = {}
        self._loading = threading.Lock()
        self.placement: probe.Placement | None = None   # how the weights were placed (after the first load)

    def adapter_for(self, variant: str) -> Path | None:
        """The adapter a tuned variant uses: one asked for (config.adapter / config.passage_adapter) must exist;
        the shipped file is used when present; None when there is none (or tuning is switched off)."""
        field, what, _ = _ASKED[variant]
        if not self.config.cqa:
            return None
        asked = getattr(self.config, field) or None
        if asked is not None:
            path = catalog.resolve_adapter(asked)   # a local file, or OWNER/NAME on the Hub (cached)
            if not path.is_file():
                raise BadAdapter(f"{what} {asked} does not exist")
            return path
        shipped = shipped_adapter(variant)
        return shipped if shipped.is_file() else None

    def adapter_path(self) -> Path | None:
        """The CQA variant's adapter (see adapter_for)."""
        return self.adapter_for(CQA_LABEL)

    def variants(self) -> list[str]:
        return [BASE_LABEL] + [v for v in TUNED if self.adapter_for(v)]

    def get(self, variant: str = BASE_LABEL, strength: float = 1.0) -> Engine:
        """The engine for a variant (a tuned one at `strength`); the weights load on first use."""
        if variant != BASE_LABEL and variant not in TUNED:
            raise UnknownModel(f"unknown variant {variant!r}: choose one of {self.variants()}")
        with self._loading:
            lora = self.adapter_for(variant) if variant in TUNED else None
            if self._base is None:
                self._base = self._load_base()
            if variant == BASE_LABEL:
                return self._base
            if lora is None:
                _, what, name = _ASKED[variant]
                raise BadAdapter(f"no {what} found at {shipped_adapter(variant)}: build one with `python -m finetune "
                                 f"train --config finetune/configs/{name}.toml` and `python -m finetune export "
                                 f"--to models/{name}`")
            key = (lora, float(strength))
            if key not in self._variants:
                self._variants[key] = self._base.variant(lora, strength)
            return self._variants[key]

    def _load_base(self) -> Engine:
        """The base weights, placed as llama.choose_extra_bufts decides, checked first in a child process when
        config.probe is set (a native crash there falls back to the safe placement instead of killing us)."""
        c = self.config
        model = copies.served(catalog.resolve(c.model, c.cache_dir), self.weights(), c.cache_dir)
        if c.probe:
            self.placement = probe.decide(model.path, c.extra_bufts, n_threads=c.n_threads or os.cpu_count() or 1,
                                         cache_dir=c.cache_dir)
        else:
            self.placement = probe.Placement(*llama.choose_extra_bufts(c.extra_bufts, llama.system_info()), False)
        log.info("weights: extra buffer types %s", self.placement.reason)
        return Engine.load(c.model, n_threads=c.n_threads, n_ctx=c.n_ctx, extra_bufts=self.placement.extra_bufts,
                           cache_dir=c.cache_dir, weights=self.weights())

    def weights(self) -> str:
        """Which weights the base loads: as configured, else the measured default for the embedded model."""
        c = self.config
        return c.weights or defaults.served_weights(c.model)
