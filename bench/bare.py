"""A plain `llama_cpp.Llama`, for comparisons only (bench/engine.py's bare loop, a reference in tests), whose
weights are placed as the engine's are (assistant/llama.py decides; this only applies the decision).

    >>> llm = bare_llama(path, extra_bufts=engine.extra_bufts, n_ctx=2048, verbose=False)   # doctest: +SKIP
"""
from __future__ import annotations

import threading
from pathlib import Path

_patching = threading.Lock()


def bare_llama(path: Path, *, extra_bufts: bool, **kwargs):
    """llama_cpp.Llama(model_path=path, **kwargs) with llama_model_params.use_extra_bufts set. Llama() has no
    argument for it, so the public llama_model_default_params is wrapped while the model loads."""
    import llama_cpp
    import llama_cpp.llama_cpp as capi

    with _patching:
        original = capi.llama_model_default_params

        def defaults():
            params = original()
            params.use_extra_bufts = bool(extra_bufts)
            return params

        capi.llama_model_default_params = defaults
        try:
            return llama_cpp.Llama(model_path=str(path), **kwargs)
        finally:
            capi.llama_model_default_params = original
