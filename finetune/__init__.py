"""Rebuild the CQA model: annotations -> validated, audited, rendered chat examples -> LoRA -> GGUF.

    python -m finetune --help

Only this package talks to torch; the app loads what `python -m finetune export` writes.
"""
