"""The model as the app uses it: weights once, variants (adapter + strength), log-prob passes, drafts.

    >>> base = Engine.load("smollm2-135m")                                  # doctest: +SKIP
    >>> cqa = base.variant("models/cqa/adapter.gguf", strength=1.0)          # same weights, same context
    >>> cond, uncond = base.token_logprobs_pair(prompts.conditional, prompts.unconditional, ids)
    >>> with base.draft(base.tokenize_prompt(prompts.conditional), Sampler(seed=1)) as run:
    ...     run.score_with(None, base.tokenize_prompt(prompts.unconditional))   # twin stream
    ...     while (step := run.step()) is not None: print(step.piece, step.logprob, step.logprob0)
    >>> with base.drafts(prompt_ids, [Sampler(seed=s) for s in range(4)]) as group: ...   # 4 drafts side by side

Log-probabilities are natural logs from the raw distribution (before guidance, temperature and
sampling filters). Every pass and every draft starts from an empty KV cache with the variant's
adapter state set (so the same seed and settings give the same draft, and no cell is ever reused
across adapter states). Memory grows with n_batch x vocabulary, never n_ctx x vocabulary: logits are
asked for only where they predict a text token, and reduced to one number at once.

Drafts (`draft()`, the decode loop in assistant/draft.py) decode up to three sequences in lockstep; a draft
gets the context through `hold()` (the lock, the context emptied with the variant's adapter set) and owns its
sequence ids. How the weights are placed (llama.cpp's extra buffer types, off on CPUs with AMX) is decided in
assistant/llama.py; `python app.py` also checks the choice in a child process first (assistant/probe.py).
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Iterator

import numpy as np

from . import catalog, copies, guidance, llama, passes
from .adapter_meta import check_adapter
from .chat import Prompt
from .draft import N_SEQUENCES, Draft, DraftRun
from .errors import BadAdapter, BadModelFile, BadText, EngineFailure
from .llama import Context, LlamaError, Weights
from .lockstep import Lockstep
from .passes import TokenLogprobs
from .sampler import Sampler

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 2048     # tokens per sequence; SmolLM2 was trained at 8192, a writing brief needs far less
DEFAULT_N_BATCH = 512    # tokens per decode call in the log-prob pass (see bench/)
CELLS_PER_SEQUENCE = 2   # the KV cache holds 2 x n_ctx cells, shared by a draft's 2-3 sequences
GGUF_CHAT_TEMPLATE = "tokenizer.chat_template"
GGUF_ARCH = "general.architecture"
GGUF_NAME = "general.name"


EngineError = EngineFailure   # anything the engine cannot do, said so a user knows what to change


class _Core:
    """One model in memory: its weights, one context (cells for a draft's sequences), one lock."""

    def __init__(self, model: catalog.ResolvedModel, weights: Weights, ctx: Context, n_ctx: int, n_threads: int,
                 extra_bufts: bool):
        self.model, self.weights, self.ctx = model, weights, ctx
        self.n_ctx, self.n_threads, self.extra_bufts = n_ctx, n_threads, extra_bufts
        self.lock = threading.Lock()   # a llama.cpp context is not thread-safe: one pass or draft at a time
        self.chat = _chat_formatter(weights)

    def close(self) -> None:
        self.ctx.close()
        self.weights.close()


class Engine:
    """A variant of a loaded model: the base, or the base + a LoRA adapter at a strength. Variants made
    with `variant()` share the weights, the context and its lock."""

    def __init__(self, core: _Core, lora_path: Path | None = None, strength: float = 1.0):
        self._core = core
        self.lora_path = lora_path
        self.strength = float(strength)
        self._adapter = core.weights.adapter(lora_path) if lora_path else None
        self._chat = core.chat

    # ---- loading -------------------------------------------------------------
    @classmethod
    def load(cls, name: str | None = None, *, lora_path: str | Path | None = None, strength: float = 1.0,
             n_threads: int | None = None, n_ctx: int = DEFAULT_N_CTX, n_batch: int = DEFAULT_N_BATCH,
             flash_attn: bool = False, n_gpu_layers: int | None = None, extra_bufts: bool | None = None,
             cache_dir: Path = catalog.DEFAULT_CACHE, weights: str = copies.SHIPPED) -> "Engine":
        """Resolve `name` through the catalog and load it; clear errors for bad files. `n_threads` None: all
        cores. `extra_bufts` None: llama.cpp's extra weight buffer types as llama.choose_extra_bufts decides
        for this CPU (off where AMX is; see README, known issues). `weights`: the file itself ("shipped") or a
        copy of it in another type, made in `cache_dir` at first use (assistant/copies.py); a "+FA" suffix turns
        flash attention on."""
        model = copies.served(catalog.resolve(name, cache_dir), weights, cache_dir)
        flash_attn = flash_attn or copies.parse(weights)[1]
        n_threads = n_threads or os.cpu_count() or 1
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama.supports_gpu_offload() else 0
        if extra_bufts is None:
            extra_bufts, _ = llama.choose_extra_bufts("auto", llama.system_info())
        lora = catalog.resolve_adapter(lora_path) if lora_path else None
        if lora is not None:
            check_adapter(lora, model)
        try:
            weights = Weights.load(model.path, n_gpu_layers, extra_bufts=extra_bufts)
        except LlamaError as e:
            raise BadModelFile(f"llama.cpp could not load model file {model.path}: the file may be corrupt or "
                               "truncated; re-install the package or re-download the file.") from e
        ctx = Context(weights, n_cells=CELLS_PER_SEQUENCE * n_ctx, n_seq=N_SEQUENCES, n_batch=n_batch,
                      n_threads=n_threads, flash_attn=flash_attn)
        log.info("loaded %s (%s) threads=%d n_ctx=%d extra_bufts=%s", model.name, model.path, n_threads, n_ctx,
                 extra_bufts)
        core = _Core(model, weights, ctx, n_ctx, n_threads, extra_bufts)
        base = cls(core)
        return base.variant(lora, strength) if lora else base

    def variant(self, lora_path: str | Path | None, strength: float = 1.0) -> "Engine":
        """The same weights and context with another adapter (or none) and strength (LoRA scale 0-2)."""
        if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0 <= strength <= 2):
            raise guidance.GuidanceError(f"CQA strength {strength!r} must be between 0 and 2")
        lora = catalog.resolve_adapter(lora_path) if lora_path else None
        if lora is None:
            return Engine(self._core, None, strength)
        catalog.check_gguf(lora)
        check_adapter(lora, self.model)
        try:
            return Engine(self._core, lora, strength)
        except LlamaError as e:
            raise BadAdapter(f"llama.cpp could not load adapter {lora} on {self.model.path.name}: {e}. "
                             "The file may be corrupt or made for another model.") from e

    def close(self) -> None:
        """Free the model (and every variant sharing it)."""
        self._core.close()

    @property
    def model(self) -> catalog.ResolvedModel:
        return self._core.model

    @property
    def lock(self) -> threading.Lock:
        return self._core.lock

    @property
    def n_ctx(self) -> int:
        return self._core.n_ctx

    @property
    def n_cells(self) -> int:
        """KV cells of the context, shared by every sequence of a draft (or of several drafts)."""
        return self._core.ctx.n_cells

    @property
    def n_threads(self) -> int:
        return self._core.n_threads

    @property
    def extra_bufts(self) -> bool:
        """Whether llama.cpp may repack these weights into its extra CPU buffer types (llama.choose_extra_bufts)."""
        return self._core.extra_bufts

    @property
    def n_vocab(self) -> int:
        return self._core.weights.n_vocab

    @property
    def metadata(self) -> dict:
        return self._core.weights.metadata

    @property
    def label(self) -> str:
        if not self.lora_path:
            return self.model.name
        return f"{self.model.name} + {self.lora_path.name}" + (f" x{self.strength:g}" if self.strength != 1 else "")

    def shares_weights_with(self, other: "Engine") -> bool:
        return self._core is other._core

    # ---- text <-> tokens ---------------------------------------------------------
    @property
    def chat_formatter(self):
        """messages -> prompt with the GGUF's own chat template (None when it has none)."""
        return self._chat

    def tokenize_prompt(self, prompt: Prompt | str) -> list[int]:
        """Prompt -> ids, BOS as the GGUF asks. Only a Prompt's markup parts may hold control tokens; its
        other parts (the brief's words) are plain text. A bare str is markup we wrote ourselves."""
        w = self._core.weights
        parts = prompt.parts if isinstance(prompt, Prompt) else ((prompt, True),)
        ids = [w.bos] if w.add_bos and w.bos >= 0 else []
        for text, markup in parts:
            ids += w.tokenize(_utf8(text), add_bos=False, special=markup)
        if len(ids) >= 2 and ids[0] == ids[1] == w.bos:  # template wrote BOS and the GGUF asks for one
            ids = ids[1:]
        return ids

    def tokenize_text(self, text: str) -> list[int]:
        """Scored text -> ids: no BOS, control-token strings treated as plain text."""
        return self._core.weights.tokenize(_utf8(text), add_bos=False, special=False)

    def count_tokens(self, prompt: Prompt | str) -> int:
        return len(self.tokenize_prompt(prompt))

    def pieces(self, ids: list[int]) -> tuple[list[str], list[tuple[int, int]], str]:
        """Per-token text and char offsets into the joined text, decoded incrementally (a character split
        over two tokens belongs to the token that completes it)."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces, offsets, chunks, n = [], [], [], 0
        for t in ids:
            b = self._core.weights.piece(t)
            s = dec.decode(b)
            chunks.append(s)
            offsets.append((n, n + len(s)))
            n += len(s)
            pieces.append(b.decode("utf-8", errors="replace"))
        tail = dec.decode(b"", final=True)
        if tail and offsets:
            offsets[-1] = (offsets[-1][0], offsets[-1][1] + len(tail))
        return pieces, offsets, "".join(chunks) + tail

    def is_end(self, token: int) -> bool:
        return self._core.weights.is_end(token)

    def piece(self, token: int) -> bytes:
        """A token's bytes (control tokens: empty)."""
        return self._core.weights.piece(token)

    # ---- scoring -----------------------------------------------------------------
    def token_logprobs(self, prompt: Prompt | str, text: str) -> TokenLogprobs:
        """log P(x_t | prompt, x_<t) for every token of `text`, in one batched pass."""
        return self.token_logprobs_ids(prompt, self.tokenize_text(text))

    def token_logprobs_ids(self, prompt: Prompt | str, ids: list[int]) -> TokenLogprobs:
        return self._passes([prompt], [list(ids)])[0][0]

    def token_logprobs_pair(self, cond: Prompt | str, uncond: Prompt | str,
                            ids: list[int]) -> tuple[TokenLogprobs, TokenLogprobs]:
        """Both readers of the score under one hold of the lock: the same text after each prompt. The first also
        gives each position's top-k alternatives under `cond`, the second their log-probs under `uncond`."""
        ((a, b),) = self.token_logprobs_many(cond, uncond, [ids])
        return a, b

    def token_logprobs_many(self, cond: Prompt | str, uncond: Prompt | str, texts: list[list[int]],
                            top: bool = True) -> list[tuple[TokenLogprobs, TokenLogprobs]]:
        """`token_logprobs_pair` for several texts under the same two prompts (versions of one passage, drafts of
        one brief): each prompt is decoded once and its cells shared with every text (llama.cpp's seq_cp).
        `top` False: log-probs only, no alternatives (an eval reader's or a judge's pass)."""
        return self._passes([cond, uncond], [list(t) for t in texts], top)

    def _passes(self, prompts: list, texts: list[list[int]], top: bool = True) -> list[list[TokenLogprobs]]:
        return passes.run(self, prompts, texts, top)

    @contextlib.contextmanager
    def hold(self) -> Iterator[Context]:
        """The model's lock and its context, emptied, with this variant's adapter state; emptied again after."""
        with self.lock:
            ctx = self._core.ctx
            try:
                ctx.set_adapter(self._adapter, self.strength)
                ctx.clear()
                yield ctx
            finally:
                ctx.clear()

    # ---- drafts --------------------------------------------------------------------
    def draft(self, gen_ids: list[int], sampler: Sampler, alpha: float = 0.0, beta: float = guidance.DEFAULT_BETA,
              cancel: threading.Event | None = None, n_known: int = 0,
              lazy_every: int = 0) -> ContextManager[DraftRun]:
        """A draft after `gen_ids` (prompt, plus any text already written); use as a context manager.
        The prompt is decoded afresh: the same seed and settings give the same draft, whatever came before.
        `n_known`: the last tokens of `gen_ids` are text already written; `run.known_logprobs` has theirs.
        `lazy_every` > 0: without guidance, the unconditional reader reads that many tokens at a time."""
        return _lone(self.drafts(gen_ids, [sampler], alpha, beta, cancel, n_known, lazy_every))

    def drafts(self, gen_ids: list[int], samplers: list[Sampler], alpha: float = 0.0,
               beta: float = guidance.DEFAULT_BETA, cancel: threading.Event | None = None, n_known: int = 0,
               lazy_every: int = 0) -> Lockstep:
        """Several drafts after one prompt, one sampler each, decoded side by side (assistant/lockstep.py)."""
        for sampler in samplers:
            sampler.validate()
        problems = guidance.check(alpha, beta)
        if problems:
            raise guidance.GuidanceError("; ".join(problems))
        if not gen_ids:
            raise EngineError("the prompt is empty")
        if len(gen_ids) >= self.n_ctx:
            raise EngineError(f"the prompt is {len(gen_ids)} tokens, the context window {self.n_ctx}: "
                              "shorten the brief or the text so far")
        return Lockstep(self, list(gen_ids), samplers, alpha, beta, cancel, n_known, lazy_every)

    def complete(self, prompt: Prompt | str, sampler: Sampler, uncond: Prompt | str | None = None,
                 alpha: float = 0.0, lazy_every: int = 0) -> Draft:
        """A whole draft at once, for scripts and benchmarks: a twin stream when `uncond` is given (each token
        then has both log-probs), else the sampling sequence alone."""
        with self.draft(self.tokenize_prompt(prompt), sampler, alpha, lazy_every=lazy_every) as run:
            if uncond is not None:
                run.score_with(None, self.tokenize_prompt(uncond))
            while run.step() is not None:
                continue
            return run.finish()

    def info(self) -> dict:
        return {"model": self.model.name, "path": str(self.model.path),
                "architecture": self.metadata.get(GGUF_ARCH, "?"), "name": self.metadata.get(GGUF_NAME, "?"),
                "adapter": str(self.lora_path) if self.lora_path else None, "strength": self.strength,
                "n_ctx": self.n_ctx, "n_threads": self.n_threads, "extra_bufts": self.extra_bufts, "chat_template": self._chat is not None}


@contextlib.contextmanager
def _lone(group: Lockstep) -> Iterator[DraftRun]:
    with group:
        yield group.lanes[0]


def _chat_formatter(weights: Weights):
    from .chat import formatter

    template = weights.metadata.get(GGUF_CHAT_TEMPLATE)
    if not template:
        return None
    return formatter(template, weights.token_text(weights.bos), weights.token_text(weights.eos))


def _utf8(text: str) -> bytes:
    if not isinstance(text, str):
        raise BadText(f"expected text, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates from a bad paste
        raise BadText(f"the text is not valid UTF-8 at character {e.start}: re-save it as UTF-8") from e
