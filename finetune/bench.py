"""Benchmark: seconds per training step and per epoch for a config on this machine.

    python -m finetune bench --config finetune/configs/cqa.toml --steps 3

Times real optimizer steps (forward, backward, AdamW) of the config's LoRA at 512 tokens (the
figure docs/design.md §9.4 quotes) and at the mean length of the config's data, then estimates an epoch as
train examples x seconds per example + held-out examples x seconds per evaluation forward pass.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from .config import TrainConfig

log = logging.getLogger(__name__)


def _example(length: int, vocab: int, seed: int):
    import random

    from .render import IGNORE, Example

    rng = random.Random(seed)
    ids = [rng.randrange(100, vocab) for _ in range(length)]
    prompt = length // 4   # roughly the brief's share of a rendered annotation
    return Example("bench", "train", ids, [IGNORE] * prompt + ids[prompt:])


def bench(cfg: TrainConfig, steps: int = 3, lengths: tuple[int, ...] = (512,)) -> dict:
    import torch

    from . import model as base_model
    from . import train as tr

    device = base_model.pick_device(cfg.device)
    base_model.set_threads(cfg.threads)
    t0 = time.time()
    model, tokenizer, base = base_model.load_base(cfg.base, device)
    load_s = time.time() - t0
    data = None
    if Path(cfg.data).is_file():
        data = tr.prepare(cfg, tokenizer, base.path)
        lengths = (*lengths, round(data.info["tokens_mean"]))
    model = base_model.add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, cfg.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    autocast = tr.autocast_for(device, cfg.precision)
    pad = tokenizer.pad_token_id or 0
    rows = []
    for length in lengths:
        batch = [_example(length, model.config.vocab_size, i) for i in range(cfg.batch_size)]
        tr.train_step(model, optimizer, [batch], cfg.lr, cfg, pad, device, autocast)   # warm-up
        _sync(device)
        t = time.time()
        for _ in range(steps):
            tr.train_step(model, optimizer, [batch], cfg.lr, cfg, pad, device, autocast)
        _sync(device)
        step_s = (time.time() - t) / steps
        t = time.time()
        tr.evaluate(model, batch, pad, device, autocast, cfg.batch_size)
        _sync(device)
        rows.append({"tokens": length, "batch": cfg.batch_size, "s_per_micro_step": step_s,
                     "tokens_per_s": length * cfg.batch_size / step_s, "s_per_eval_forward": time.time() - t})
    out = {"device": device, "threads": torch.get_num_threads(), "load_s": load_s, "rows": rows,
           "lora": {"r": cfg.lora_r, "targets": list(cfg.target_modules)}}
    if data is not None:
        per_seq = rows[-1]["s_per_micro_step"] / cfg.batch_size
        train_s = data.info["n_train"] * per_seq
        eval_s = data.info["n_heldout"] * rows[-1]["s_per_eval_forward"] / cfg.batch_size
        out["epoch"] = {"n_train": data.info["n_train"], "n_heldout": data.info["n_heldout"],
                        "mean_tokens": rows[-1]["tokens"], "optimizer_steps": -(-data.info["n_train"] // (
                            cfg.batch_size * cfg.grad_accum)), "s_per_epoch": train_s + eval_s,
                        "s_per_run": (train_s + eval_s) * cfg.epochs}
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def format_bench(b: dict) -> str:
    lines = [f"device {b['device']}, {b['threads']} threads; base loaded in {b['load_s']:.0f} s; "
             f"LoRA r={b['lora']['r']} on {len(b['lora']['targets'])} projections"]
    lines.append(f"{'tokens':>7} {'batch':>5} {'s/step':>8} {'tok/s':>8} {'s/eval':>7}")
    for r in b["rows"]:
        lines.append(f"{r['tokens']:>7} {r['batch']:>5} {r['s_per_micro_step']:>8.2f} {r['tokens_per_s']:>8.0f} "
                     f"{r['s_per_eval_forward']:>7.2f}")
    if "epoch" in b:
        e = b["epoch"]
        lines.append(f"epoch: {e['n_train']} train examples (~{e['mean_tokens']} tokens, {e['optimizer_steps']} "
                     f"optimizer steps) + {e['n_heldout']} held-out ≈ {e['s_per_epoch'] / 60:.1f} min; "
                     f"whole run ≈ {e['s_per_run'] / 3600:.2f} h")
    return "\n".join(lines)
