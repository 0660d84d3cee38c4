"""The only module that talks to llama.cpp: load a GGUF, stream drafts, score texts.

    >>> eng = Engine.load("smollm2-135m")                       # doctest: +SKIP
    >>> lp = eng.token_logprobs("Once upon a", " time")          # doctest: +SKIP
    >>> lp.pieces, lp.logprobs                                    # doctest: +SKIP

Log-probabilities are natural logs from the raw distribution (before temperature
and sampling filters). The log-prob pass decodes prompt + text in n_batch chunks
and asks llama.cpp for logits only at the positions that predict a text token, so
memory grows with n_batch x vocabulary, never with n_ctx x vocabulary.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import catalog
from .sampler import Sampler

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 2048     # tokens; SmolLM2 was trained at 8192, a writing brief needs far less
DEFAULT_N_BATCH = 512    # tokens per decode call in the log-prob pass (see bench/)
GGUF_CHAT_TEMPLATE = "tokenizer.chat_template"
GGUF_ARCH = "general.architecture"
GGUF_NAME = "general.name"


class EngineError(RuntimeError):
    """Anything the engine cannot do, said so a user knows what to change."""


@dataclass(frozen=True)
class TokenLogprobs:
    """Log-probs (natural log) of each text token given the prompt and the tokens before it."""
    ids: list[int]
    pieces: list[str]                 # each token's text (UTF-8 fragments decoded leniently)
    offsets: list[tuple[int, int]]    # [start, end) char offsets of each token in `text`
    logprobs: np.ndarray              # float64, one per token
    text: str                         # the decoded text, exactly what offsets index


@dataclass
class Step:
    """One generated token."""
    id: int
    piece: str
    logprob: float  # natural log, raw distribution, conditional on the prompt


@dataclass
class Draft:
    """What `stream` leaves behind when it ends."""
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    stop_reason: str = ""   # "eos", "stop", "length", "cancelled"
    exact: bool = True      # text == detokenized ids, so generation log-probs score it exactly


def _log_softmax_at(logits: np.ndarray, target: int) -> float:
    """log P(target) from raw logits, in float64: logit[target] - logsumexp(logits)."""
    x = logits.astype(np.float64, copy=False)
    m = x.max()
    return float(x[target] - m - np.log(np.exp(x - m).sum()))


class Engine:
    """A loaded GGUF model (optionally with a LoRA adapter) behind one lock."""

    def __init__(self, llm, model: catalog.ResolvedModel, lora_path: Path | None, n_threads: int):
        self._llm = llm
        self.model = model
        self.lora_path = lora_path
        self.n_threads = n_threads
        self.lock = threading.Lock()  # one per loaded model: llama.cpp contexts are not thread-safe
        self.n_ctx = llm.n_ctx()
        self.n_vocab = llm.n_vocab()
        self.metadata = dict(llm.metadata)
        self._chat = self._make_chat_formatter()

    # ---- loading -------------------------------------------------------------
    @classmethod
    def load(cls, name: str | None = None, *, lora_path: str | Path | None = None,
             n_threads: int | None = None, n_ctx: int = DEFAULT_N_CTX, n_batch: int = DEFAULT_N_BATCH,
             n_ubatch: int | None = None, flash_attn: bool = False, n_gpu_layers: int | None = None,
             seed: int = 0) -> "Engine":
        """Resolve `name` through the catalog and load it; clear errors for bad files."""
        import llama_cpp

        model = catalog.resolve(name)
        n_threads = n_threads or int(os.environ.get("CQA_THREADS", 0)) or os.cpu_count() or 1
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        lora = Path(lora_path) if lora_path else None
        if lora is not None:
            catalog.check_gguf(lora)
            _check_adapter(lora, model)
        try:
            llm = llama_cpp.Llama(
                model_path=str(model.path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch or n_batch,
                n_threads=n_threads, n_threads_batch=n_threads, n_gpu_layers=n_gpu_layers,
                flash_attn=flash_attn, seed=seed, logits_all=False, verbose=False,
                lora_path=str(lora) if lora else None)
        except (ValueError, RuntimeError, OSError) as e:
            what = f"adapter {lora} on {model.path.name}" if lora else f"model file {model.path}"
            raise EngineError(f"llama.cpp could not load {what}: {e}. The file may be corrupt or "
                              "truncated; re-install the package or re-download the file.") from e
        log.info("loaded %s (%s) threads=%d n_ctx=%d lora=%s", model.name, model.path, n_threads, n_ctx, lora)
        return cls(llm, model, lora, n_threads)

    @property
    def llama(self):
        """The underlying llama_cpp.Llama, for benchmarks that compare against it."""
        return self._llm

    @property
    def label(self) -> str:
        return self.model.name + (f" + {self.lora_path.name}" if self.lora_path else "")

    # ---- text <-> tokens ---------------------------------------------------------
    def _make_chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.metadata.get(GGUF_CHAT_TEMPLATE)
        if not template:
            return None
        llm = self._llm
        eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() != -1 else ""
        bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() != -1 else ""
        fmt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        return lambda messages: fmt(messages=messages).prompt

    @property
    def chat_formatter(self):
        """messages -> prompt with the GGUF's own chat template (None when it has none)."""
        return self._chat

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Prompt text -> ids, special tokens parsed, BOS as the model's GGUF asks (once)."""
        ids = self._llm.tokenize(_utf8(prompt), add_bos=True, special=True)
        bos = self._llm.token_bos()
        if len(ids) >= 2 and ids[0] == ids[1] == bos:  # template wrote BOS and llama.cpp added one
            ids = ids[1:]
        return ids

    def tokenize_text(self, text: str) -> list[int]:
        """Scored text -> ids: no BOS, special-token strings treated as plain text."""
        return self._llm.tokenize(_utf8(text), add_bos=False, special=False)

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenize_prompt(prompt))

    def pieces(self, ids: list[int]) -> tuple[list[str], list[tuple[int, int]], str]:
        """Per-token text and char offsets into the joined text (multi-byte chars split leniently)."""
        raw = [self._llm.detokenize([t]) for t in ids]
        joined, offsets, pieces = b"", [], []
        prev_chars = 0
        for b in raw:
            joined += b
            chars = len(joined.decode("utf-8", errors="ignore"))
            offsets.append((prev_chars, chars))
            pieces.append(b.decode("utf-8", errors="replace"))
            prev_chars = chars
        return pieces, offsets, joined.decode("utf-8", errors="replace")

    # ---- scoring -----------------------------------------------------------------
    def token_logprobs(self, prompt: str, text: str) -> TokenLogprobs:
        """log P(x_t | prompt, x_<t) for every token of `text`, in one batched pass."""
        return self.token_logprobs_ids(prompt, self.tokenize_text(text))

    def token_logprobs_ids(self, prompt: str, ids: list[int]) -> TokenLogprobs:
        prompt_ids = self.tokenize_prompt(prompt)
        if not prompt_ids:
            raise EngineError("the prompt is empty: every scored token needs something to follow")
        if not ids:
            raise EngineError("the text to score is empty")
        total = len(prompt_ids) + len(ids)
        if total > self.n_ctx:
            raise EngineError(f"prompt ({len(prompt_ids)} tokens) + text ({len(ids)} tokens) = {total} "
                              f"tokens, more than the context window of {self.n_ctx}: shorten the text "
                              "or the brief, or load the model with a larger n_ctx")
        with self.lock:
            lps = self._logprob_pass(prompt_ids, list(ids))
        pieces, offsets, joined = self.pieces(list(ids))
        return TokenLogprobs(list(ids), pieces, offsets, lps, joined)

    def _logprob_pass(self, prompt_ids: list[int], ids: list[int]) -> np.ndarray:
        import llama_cpp

        llm = self._llm
        tokens = prompt_ids + ids
        n_prompt = len(prompt_ids)
        # Reuse the KV cache for a shared prefix (e.g. the same brief scored twice), but always
        # re-decode the last prompt token: its logits predict the first text token.
        cached = llm.input_ids[: llm.n_tokens]
        common = 0
        for a, b in zip(cached, tokens[: n_prompt - 1]):
            if a != b:
                break
            common += 1
        if not llm._ctx.kv_cache_seq_rm(-1, common, -1):
            common = 0
            llm._ctx.kv_cache_clear()
        llm.n_tokens = common
        llm._requires_eval = True  # the last logits we leave behind are not "next token" logits
        out = np.empty(len(ids), dtype=np.float64)
        batch = llm._batch.batch
        ctx = llm._ctx.ctx
        pos = common
        while pos < len(tokens):
            chunk = tokens[pos: pos + llm.n_batch]
            want = []  # (row in batch, index into ids) for positions that predict a text token
            for i, tok in enumerate(chunk):
                p = pos + i
                batch.token[i] = tok
                batch.pos[i] = p
                batch.seq_id[i][0] = 0
                batch.n_seq_id[i] = 1
                flag = n_prompt - 1 <= p < len(tokens) - 1
                batch.logits[i] = flag
                if flag:
                    want.append(p - (n_prompt - 1))
            batch.n_tokens = len(chunk)
            rc = llama_cpp.llama_decode(ctx, batch)
            if rc != 0:
                llm._ctx.kv_cache_clear()
                llm.n_tokens = 0
                raise EngineError(f"llama_decode failed with code {rc}")
            if want:
                # Outputs are stored contiguously, in batch order, one row per flagged position.
                rows = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(len(want), self.n_vocab))
                for r, k in enumerate(want):
                    out[k] = _log_softmax_at(rows[r], ids[k])
            llm.input_ids[pos: pos + len(chunk)] = chunk
            llm.n_tokens = pos + len(chunk)
            pos += len(chunk)
        return out

    # ---- generation ----------------------------------------------------------------
    def stream(self, prompt: str, sampler: Sampler, draft: Draft | None = None,
               cancel: threading.Event | None = None, prefix_ids: list[int] | None = None) -> Iterator[Step]:
        """Yield generated tokens with their raw conditional log-probs; fill `draft` as it goes.

        `prefix_ids` are draft tokens already written (Continue): they follow the prompt and the
        new tokens continue them. Holds the model's lock until the generator is closed.
        """
        sampler.validate()
        draft = draft if draft is not None else Draft()
        prompt_ids = self.tokenize_prompt(prompt) + list(prefix_ids or [])
        room = self.n_ctx - len(prompt_ids)
        if room <= 0:
            raise EngineError(f"the prompt is {len(prompt_ids)} tokens, the context window {self.n_ctx}: "
                              "shorten the brief or the text so far")
        max_new = min(sampler.max_tokens, room)
        with self.lock:
            yield from self._generate(prompt_ids, sampler, draft, cancel, max_new)

    def complete(self, prompt: str, sampler: Sampler) -> Draft:
        """The whole draft at once, for scripts: `stream` run to its end."""
        draft = Draft()
        for _ in self.stream(prompt, sampler, draft):
            continue
        return draft

    def _generate(self, prompt_ids, sampler: Sampler, draft: Draft, cancel, max_new) -> Iterator[Step]:
        import llama_cpp

        llm = self._llm
        llm.set_seed(sampler.seed)
        eos = {llm.token_eos()} | {t for t in (_eot_id(llm),) if t is not None}
        stops = [s for s in sampler.stop if s]
        raw = b""
        draft.stop_reason = "length"
        # Decode the whole prompt afresh, in one batch, every time. llama_cpp would reuse a cached prefix and
        # decode the last prompt token alone, whose logits differ slightly from the batched ones: then the
        # same seed and prompt gave different drafts depending on the call before (measured: two greedy
        # drafts in a row, 205 vs 256 tokens). Costs one prompt prefill per draft (~0.2 s for 75 tokens).
        llm.reset()
        gen = llm.generate(prompt_ids, top_k=sampler.top_k, top_p=sampler.top_p, min_p=sampler.min_p,
                           temp=sampler.temperature, repeat_penalty=sampler.repeat_penalty, reset=True)
        try:
            for tok in gen:
                if cancel is not None and cancel.is_set():
                    draft.stop_reason = "cancelled"
                    break
                if tok in eos or llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
                    draft.stop_reason = "eos"
                    break
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1),
                                               shape=(self.n_vocab,))
                lp = _log_softmax_at(logits, tok)
                piece_bytes = llm.detokenize([tok], prev_tokens=None)
                raw += piece_bytes
                text = raw.decode("utf-8", errors="ignore")
                hit = next((s for s in stops if s in text), None)
                if hit is not None:
                    self._cut_at_stop(draft, text[: text.index(hit)])
                    break
                draft.ids.append(tok)
                draft.logprobs.append(lp)
                draft.text = text
                yield Step(tok, piece_bytes.decode("utf-8", errors="replace"), lp)
                if len(draft.ids) >= max_new:
                    break
        finally:
            gen.close()
        if draft.stop_reason != "stop":
            draft.text = raw.decode("utf-8", errors="replace")

    def _cut_at_stop(self, draft: Draft, kept: str) -> None:
        """End the draft before a stop string: keep the whole tokens that lie before it.

        When the stop string starts inside a token, the kept text no longer matches the
        tokens; `draft.exact` turns False and the scorer re-tokenises (two passes).
        """
        draft.stop_reason = "stop"
        draft.text = kept
        while draft.ids and len(self.pieces(draft.ids)[2]) > len(kept):
            draft.ids.pop()
            draft.logprobs.pop()
        draft.exact = self.pieces(draft.ids)[2] == kept if draft.ids else not kept

    def info(self) -> dict:
        return {"model": self.model.name, "path": str(self.model.path),
                "architecture": self.metadata.get(GGUF_ARCH, "?"), "name": self.metadata.get(GGUF_NAME, "?"),
                "adapter": str(self.lora_path) if self.lora_path else None, "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "chat_template": self._chat is not None}


def _eot_id(llm) -> int | None:
    import llama_cpp
    try:
        t = llama_cpp.llama_vocab_eot(llm._model.vocab)
    except (AttributeError, ctypes.ArgumentError):
        return None
    return t if t >= 0 else None


def _utf8(text: str) -> bytes:
    if not isinstance(text, str):
        raise EngineError(f"expected text, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates from a bad paste
        raise EngineError(f"the text is not valid UTF-8 at character {e.start}: re-save it as UTF-8") from e


def _check_adapter(lora: Path, model: catalog.ResolvedModel) -> None:
    """Refuse an adapter made for another base, when the adapter's metadata says which base."""
    from .adapter_meta import read_adapter_base

    base = read_adapter_base(lora)
    if base is None:
        return
    if base.get("sha256") and base["sha256"] != model.sha256:
        raise EngineError(f"adapter {lora} was trained for base {base.get('name', '?')} "
                          f"(sha256 {base['sha256'][:12]}…) but {model.name} (sha256 {model.sha256[:12]}…) "
                          "is loaded: load the matching base, or retrain with `python -m finetune train`")
