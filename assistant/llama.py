"""llama.cpp's public C API (as llama-cpp-python exposes it), wrapped once: weights, a context, a sampler.

    >>> w = Weights.load("model.gguf", n_gpu_layers=0)                 # doctest: +SKIP
    >>> ctx = Context(w, n_cells=4096, n_seq=3, n_batch=512, n_threads=2)  # doctest: +SKIP
    >>> ctx.set_adapter(w.adapter("adapter.gguf"), 1.0)               # doctest: +SKIP

The weights are loaded once; a context holds a KV cache whose cells its sequences share, and the
adapter state (LoRA + scale) it decodes with. Only this module and engine.py touch llama.cpp; neither
reaches into `llama_cpp.Llama`.

Where the weights live is decided here, once, for every path (app, CLI, eval, Ray replicas, bench):
llama.cpp's CPU backend may move weights into "extra buffer types" (repacked layouts for faster matrix
products: AMX tiles on Intel CPUs with AMX, CPU_REPACK interleaved rows elsewhere). Its AMX buffer
crashes the process in the first matrix product on some Xeons (ggml-org/llama.cpp issue 20824), and for
Q4_1 (the embedded model) it is the only extra type that applies. `choose_extra_bufts` turns extra
buffer types off where llama.cpp reports AMX and keeps llama.cpp's default elsewhere:

    >>> choose_extra_bufts("auto", "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1")
    (False, 'off: llama.cpp reports AMX_INT8 on this CPU, whose AMX weight buffer can crash (llama.cpp issue 20824)')
    >>> choose_extra_bufts("auto", "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | OPENMP = 1")
    (True, "on: llama.cpp's default (no AMX on this CPU)")
"""
from __future__ import annotations

import ctypes
import logging
import re
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import BadInput

log = logging.getLogger(__name__)
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
PENALTY_LAST_N = 64       # tokens the repeat penalty looks back over (llama-cpp-python's default)


EXTRA_BUFTS_MODES = ("auto", "on", "off")   # auto: off where llama.cpp reports AMX, else llama.cpp's default (on)
ISSUE_AMX = "llama.cpp issue 20824"


class LlamaError(RuntimeError):
    """llama.cpp refused: a file it cannot load, a batch it cannot decode."""


def system_info() -> str:
    """llama.cpp's system info line: the CPU features its build uses (e.g. 'AVX2 = 1 | AMX_INT8 = 1')."""
    return (_lib().llama_print_system_info() or b"").decode("utf-8", "replace").strip()


def supports_gpu_offload() -> bool:
    return bool(_lib().llama_supports_gpu_offload())


def has_amx(info: str) -> bool:
    """Does llama.cpp's system info report AMX (its AMX weight buffer type is then compiled in and used)?

    >>> has_amx("CPU : AVX512 = 1 | AMX_INT8 = 1 |"), has_amx("CPU : AVX512 = 1 | AMX_INT8 = 0 |"), has_amx("")
    (True, False, False)
    """
    return re.search(r"\bAMX_INT8\s*=\s*1\b", info) is not None


def choose_extra_bufts(mode: str, info: str) -> tuple[bool, str]:
    """(use extra buffer types?, why in words) for a mode in EXTRA_BUFTS_MODES and llama.cpp's system info."""
    if mode not in EXTRA_BUFTS_MODES:
        raise BadInput(f"extra buffer types: {mode!r} is not one of {', '.join(EXTRA_BUFTS_MODES)}")
    if mode != "auto":
        return mode == "on", f"{mode}: as asked"
    if has_amx(info):
        return False, f"off: llama.cpp reports AMX_INT8 on this CPU, whose AMX weight buffer can crash ({ISSUE_AMX})"
    return True, "on: llama.cpp's default (no AMX on this CPU)"


_backend = threading.Lock()
_backend_ready = False


def _lib():
    """The llama_cpp module, with llama.cpp's backend initialised once and its logging quiet."""
    global _backend_ready
    import llama_cpp
    with _backend:
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _quiet(llama_cpp)
            _backend_ready = True
    return llama_cpp


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _log_callback(level, text, user_data):  # llama.cpp's own chatter goes to our logger at debug level
    log.debug("llama.cpp: %s", (text or b"").decode("utf-8", "replace").rstrip())


def _quiet(llama_cpp) -> None:
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


class Weights:
    """A GGUF model's weights and vocabulary, loaded once (mmapped); tokenizing and pieces."""

    def __init__(self, ptr, path: Path):
        lib = _lib()
        self.ptr, self.path = ptr, path
        self.vocab = lib.llama_model_get_vocab(ptr)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lib.llama_model_n_ctx_train(ptr)
        self.bos = lib.llama_vocab_bos(self.vocab)
        self.eos = lib.llama_vocab_eos(self.vocab)
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self.vocab))
        self.metadata = self._metadata()
        self._adapters: dict[Path, int] = {}
        self._piece_cache: dict[int, bytes] = {}

    @classmethod
    def load(cls, path: Path, n_gpu_layers: int = 0, *, extra_bufts: bool) -> "Weights":
        """Load (mmap) a GGUF; `extra_bufts`: let llama.cpp repack weights into its extra CPU buffer types
        (see choose_extra_bufts: every caller passes what it decided)."""
        lib = _lib()
        params = lib.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.use_extra_bufts = bool(extra_bufts)
        ptr = lib.llama_model_load_from_file(str(path).encode(), params)
        if not ptr:
            raise LlamaError(f"llama.cpp could not load {path}")
        return cls(ptr, Path(path))

    def _metadata(self) -> dict[str, str]:
        lib = _lib()
        out = {}
        for i in range(lib.llama_model_meta_count(self.ptr)):
            key = _read_str(lambda buf, n: lib.llama_model_meta_key_by_index(self.ptr, i, buf, n))
            out[key] = _read_str(lambda buf, n: lib.llama_model_meta_val_str_by_index(self.ptr, i, buf, n))
        return out

    def token_text(self, token: int) -> str:
        """A token's vocabulary entry, e.g. '<|im_end|>' (for chat templates' bos/eos)."""
        if token < 0:
            return ""
        raw = _lib().llama_vocab_get_text(self.vocab, token)
        return (raw or b"").decode("utf-8", "replace")

    def is_end(self, token: int) -> bool:
        return bool(_lib().llama_vocab_is_eog(self.vocab, token))

    def tokenize(self, data: bytes, add_bos: bool, special: bool) -> list[int]:
        """Bytes -> ids; `special` parses control-token strings (only for template markup)."""
        lib = _lib()
        n_max = len(data) + 8
        buf = (lib.llama_token * n_max)()
        n = lib.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_bos, special)
        if n < 0:
            n_max = -n
            buf = (lib.llama_token * n_max)()
            n = lib.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_bos, special)
        if n < 0:
            raise LlamaError(f"llama_tokenize failed ({n})")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """A token's bytes as text (control tokens: empty), cached."""
        got = self._piece_cache.get(token)
        if got is None:
            lib = _lib()
            buf = ctypes.create_string_buffer(64)
            n = lib.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lib.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            got = self._piece_cache[token] = buf.raw[:max(n, 0)]
        return got

    def adapter(self, path: Path) -> int:
        """A LoRA adapter (GGUF) for these weights, loaded once; its handle."""
        path = Path(path).resolve()
        if path not in self._adapters:
            handle = _lib().llama_adapter_lora_init(self.ptr, str(path).encode())
            if not handle:
                raise LlamaError(f"llama.cpp could not load adapter {path} for {self.path.name}")
            self._adapters[path] = handle
        return self._adapters[path]

    def close(self) -> None:
        lib = _lib()
        for h in self._adapters.values():
            lib.llama_adapter_lora_free(h)
        self._adapters.clear()
        if self.ptr:
            lib.llama_model_free(self.ptr)
            self.ptr = None


def _read_str(call, size: int = 256) -> str:
    """A string out of one of llama.cpp's (buf, size) -> length getters, growing the buffer when short."""
    while True:
        buf = ctypes.create_string_buffer(size)
        n = call(buf, size)
        if n < size:
            return buf.value.decode("utf-8", "replace")
        size = n + 1


class Context:
    """A llama.cpp context on shared weights: KV cells for `n_seq` sequences, an adapter state, a batch."""

    def __init__(self, weights: Weights, n_cells: int, n_seq: int, n_batch: int, n_threads: int,
                 flash_attn: bool = False):
        lib = _lib()
        p = lib.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = n_cells, n_batch, n_batch, n_seq
        p.n_threads = p.n_threads_batch = n_threads
        p.kv_unified = True          # the sequences share the cells: a short one leaves room to a long one
        p.no_perf = True
        p.flash_attn_type = (lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                             else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        self.ptr = lib.llama_init_from_model(weights.ptr, p)
        if not self.ptr:
            raise LlamaError(f"llama.cpp could not create a context of {n_cells} cells")
        self.weights, self.n_cells, self.n_seq, self.n_batch = weights, n_cells, n_seq, n_batch
        self.memory = lib.llama_get_memory(self.ptr)
        self.batch = lib.llama_batch_init(n_batch, 0, 1)
        self.adapter_state: tuple = ()

    def set_adapter(self, handle: int | None, scale: float) -> None:
        """Decode with this adapter at this scale (None or scale 0: the base); the KV cache is cleared on
        any change, so cached cells never mix adapter states."""
        state = (handle, float(scale)) if handle and scale else ()
        if state == self.adapter_state:
            return
        lib = _lib()
        if state:
            handles = (lib.llama_adapter_lora_p_ctypes * 1)(handle)
            scales = (ctypes.c_float * 1)(state[1])
            rc = lib.llama_set_adapters_lora(self.ptr, handles, 1, scales)
        else:
            rc = lib.llama_set_adapters_lora(self.ptr, None, 0, None)
        if rc != 0:
            raise LlamaError(f"llama.cpp could not set the adapter ({rc})")
        self.clear()
        self.adapter_state = state

    def clear(self) -> None:
        _lib().llama_memory_clear(self.memory, True)

    def copy_sequence(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Share the cells of sequence `src` at positions [p0, p1) (-1: all) with `dst` too (a prompt decoded
        once, read by several drafts): no compute, no new cells."""
        _lib().llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def remove(self, seq: int) -> None:
        """Free every cell of one sequence."""
        _lib().llama_memory_seq_rm(self.memory, seq, -1, -1)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Decode (token, position, sequence, want_logits) entries in n_batch chunks.

        Yields, per chunk with wanted outputs, (indices into `entries`, their logit rows); the rows are
        llama.cpp's buffer, valid until the next chunk is decoded.
        """
        lib = _lib()
        b = self.batch
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start: start + self.n_batch]
            want = []
            for i, (tok, pos, seq, flag) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, bool(flag)
                b.seq_id[i][0] = seq
                if flag:
                    want.append(start + i)
            b.n_tokens = len(chunk)
            rc = lib.llama_decode(self.ptr, b)
            if rc != 0:
                self.clear()
                raise LlamaError(f"llama_decode failed with code {rc} (the context holds {self.n_cells} cells)")
            if want:
                rows = np.ctypeslib.as_array(lib.llama_get_logits(self.ptr), shape=(len(want), self.weights.n_vocab))
                yield want, rows

    def set_threads(self, n: int) -> None:
        _lib().llama_set_n_threads(self.ptr, n, n)

    def close(self) -> None:
        lib = _lib()
        if self.ptr:
            lib.llama_batch_free(self.batch)
            lib.llama_free(self.ptr)
            self.ptr = None


class SamplerChain:
    """llama.cpp's sampler chain (repeat penalty, top-k, top-p, min-p, temperature, seeded draw), applied
    to a logit row we give it: the guided row, or the raw one."""

    def __init__(self, n_vocab: int, *, temperature: float, top_k: int, top_p: float, min_p: float,
                 repeat_penalty: float, seed: int):
        lib = _lib()
        self.ptr = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        add = lambda s: lib.llama_sampler_chain_add(self.ptr, s)  # noqa: E731
        add(lib.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, repeat_penalty, 0.0, 0.0))
        if temperature == 0:
            add(lib.llama_sampler_init_greedy())
        else:
            add(lib.llama_sampler_init_top_k(top_k))
            add(lib.llama_sampler_init_top_p(top_p, 1))
            add(lib.llama_sampler_init_min_p(min_p, 1))
            add(lib.llama_sampler_init_temp(temperature))
            add(lib.llama_sampler_init_dist(seed))
        self._data = np.zeros(n_vocab, dtype=TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)

    def sample(self, row: np.ndarray) -> int:
        """Draw a token from `row` (raw logits, -inf = banned) and record it for the repeat penalty."""
        lib = _lib()
        d = self._data
        d["id"], d["logit"], d["p"] = self._ids, row, 0.0
        arr = lib.llama_token_data_array(data=d.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
                                         size=len(d), selected=-1, sorted=False)
        lib.llama_sampler_apply(self.ptr, ctypes.byref(arr))
        if not 0 <= arr.selected < arr.size:
            raise LlamaError("the sampler chain selected no token")
        tok = int(arr.data[arr.selected].id)
        lib.llama_sampler_accept(self.ptr, tok)
        return tok

    def accept(self, token: int) -> None:
        """A token that joined the draft without being sampled (a fed header, a continued draft)."""
        _lib().llama_sampler_accept(self.ptr, token)

    def close(self) -> None:
        if self.ptr:
            _lib().llama_sampler_free(self.ptr)
            self.ptr = None
