"""Does llama.cpp apply an exported adapter the way peft does? Compare the log-prob shifts.

    python -m finetune check --run finetune/runs/cqa --epoch 6

shift_t = log P_adapted(x_t) - log P_base(x_t) for every scored token, measured twice: in
transformers (peft model on the dequantized fp32 weights) and in llama.cpp (base GGUF + GGUF
adapter, through assistant.engine). They cannot be equal: llama.cpp quantizes activations to 8 bits
against the Q4_1 weights, so base log-probs already differ by ~0.1 nat/token. What must hold is that
the shifts agree in direction and size, measured by Pearson r (docs/design.md §9.3: r ~ 0.85 with all seven
projections; a q/k adapter exported without llama.cpp's q/k row permutation gives r ~ -0.24).

    >>> round(pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])), 4)
    0.9934
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MIN_R = 0.7    # below this the export is wrong (a missing permutation gives r < 0.3)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def hf_logprobs(model, prompt_ids: list[int], ids: list[int]) -> np.ndarray:
    """log P(ids[t] | prompt, ids[:t]) in nats, from a transformers causal LM, in float64."""
    import torch

    x = torch.tensor([list(prompt_ids) + list(ids)], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, len(prompt_ids) - 1: -1].double()
    lp = torch.log_softmax(logits, -1)
    return lp[torch.arange(len(ids)), torch.tensor(ids)].cpu().numpy()


def compare(peft_model, base_engine, adapted_engine, samples: list[tuple[str, str]], max_tokens: int = 96) -> dict:
    """Shifts in transformers vs llama.cpp over (prompt, text) samples; the first `max_tokens` of each text."""
    hf_shift, ll_shift, diff_adapted = [], [], []
    peft_model.eval()
    for prompt, text in samples:
        ids = base_engine.tokenize_text(text)[:max_tokens]
        prompt_ids = base_engine.tokenize_prompt(prompt)
        with peft_model.disable_adapter():
            hb = hf_logprobs(peft_model, prompt_ids, ids)
        ha = hf_logprobs(peft_model, prompt_ids, ids)
        lb = base_engine.token_logprobs_ids(prompt, ids).logprobs
        la = adapted_engine.token_logprobs_ids(prompt, ids).logprobs
        hf_shift.append(ha - hb)
        ll_shift.append(la - lb)
        diff_adapted.append(np.abs(ha - la))
    h, l = np.concatenate(hf_shift), np.concatenate(ll_shift)
    return {"tokens": int(len(h)), "pearson_r": pearson(h, l), "hf_mean_abs_shift": float(np.abs(h).mean()),
            "llama_mean_abs_shift": float(np.abs(l).mean()),
            "mean_abs_diff_adapted": float(np.concatenate(diff_adapted).mean())}


def check_run(run_dir: Path, epoch: int | None = None, n: int = 4) -> dict:
    """Compare epoch N's peft adapter with its exported GGUF on up to `n` held-out annotations."""
    import copy

    from assistant.engine import Engine

    from . import annotations, render
    from .errors import ExportError
    from .export import GGUF_DIR, epochs_of
    from .files import read_json, write_json
    from .model import load_adapter, load_base
    from .train import EPOCHS_DIR, RUN_FILE

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ExportError(f"{run_dir} is not a training run (no {RUN_FILE}): run `python -m finetune train` first")
    run = read_json(run_dir / RUN_FILE)
    epoch = epoch or (epochs_of(run_dir) or [0])[-1]
    gguf = run_dir / GGUF_DIR / f"epoch-{epoch}.gguf"
    if not gguf.is_file():
        raise ExportError(f"{gguf} does not exist: run `python -m finetune export --run {run_dir} --epoch {epoch}`")
    anns = annotations.load(run["config"]["data"])
    anns = ([a for a in anns if a.split == "heldout"] or anns)[:n]
    base_model, _, resolved = load_base(run["base"]["name"])
    peft_model = load_adapter(copy.deepcopy(base_model), run_dir / EPOCHS_DIR / f"epoch-{epoch}")
    base_engine = Engine.load(run["base"]["name"])
    fmt = render.chat_formatter(resolved.path)
    samples = [(r.prompt, r.completion) for r in (render.render(a, fmt) for a in anns)]
    result = {"epoch": epoch, **compare(peft_model, base_engine, Engine.load(run["base"]["name"], lora_path=gguf),
                                        samples)}
    result["ok"] = result["pearson_r"] > MIN_R
    write_json(run_dir / GGUF_DIR / f"epoch-{epoch}.check.json", result)
    return result
