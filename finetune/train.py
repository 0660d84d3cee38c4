"""LoRA fine-tuning of the base model on rendered annotations (transformers + peft).

    python -m finetune train --config finetune/configs/cqa.toml
    python -m finetune train --config finetune/configs/cqa.toml --resume   # after an interruption

The run folder (config `out_dir`) holds run.json (config, base and data hashes, device, versions),
metrics.json (train and held-out loss per epoch; epoch 0 = the base model), epochs/epoch-N/ (the peft
adapter after epoch N, every epoch kept) and checkpoint.pt (optimizer state after the last finished
epoch). Each epoch reseeds shuffling and dropout from (seed, epoch), so a resumed run ends where an
uninterrupted one would.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from assistant import atomic

from . import annotations, provenance, render
from .config import TrainConfig
from .errors import ExampleTooLong, TrainError  # noqa: F401 - raised here, imported from here by callers
from .files import atomic_dir, read_json, sha256, write_json

log = logging.getLogger(__name__)

RUN_FILE, METRICS_FILE, CHECKPOINT_FILE, EPOCHS_DIR = "run.json", "metrics.json", "checkpoint.pt", "epochs"
RESUMABLE = {"epochs", "threads", "device", "precision"}   # may differ when resuming


@dataclass
class Data:
    train: list
    heldout: list
    info: dict       # path, sha256, counts, truncated ids


def prepare(cfg: TrainConfig, tokenizer, base_path: Path) -> Data:
    """Validate, render and tokenize the annotations; every too-long example is reported at once."""
    anns = annotations.load(cfg.data)
    fmt = render.chat_formatter(base_path)
    end_id = render.end_of_turn_id(tokenizer, fmt)
    examples, problems = [], []
    for ann in anns:
        try:
            examples.append(render.tokenize(render.render(ann, fmt, cfg.target), tokenizer, end_id, cfg.max_seq_len,
                                            cfg.truncate))
        except ExampleTooLong as e:
            problems.append(str(e))
    if problems:
        raise TrainError(f"{len(problems)} example(s) too long: " + "; ".join(problems))
    train = [e for e in examples if e.split == "train"]
    heldout = [e for e in examples if e.split == "heldout"]
    if not train:
        raise TrainError(f"{cfg.data} has no annotations with \"split\": \"train\"")
    lengths = [len(e.input_ids) for e in examples]
    info = {"path": str(cfg.data), "sha256": sha256(cfg.data), "n_train": len(train),
            "n_heldout": len(heldout), "tokens_max": max(lengths), "tokens_mean": sum(lengths) / len(lengths),
            "truncated": [e.id for e in examples if e.truncated]}
    return Data(train, heldout, info)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then constant or cosine to 0."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))


def plan_epoch(examples: list, cfg: TrainConfig, epoch: int) -> list[list[list]]:
    """Optimizer steps of one epoch, each a list of micro-batches; the order depends on (seed, epoch) only."""
    order = list(range(len(examples)))
    random.Random(cfg.seed * 1000 + epoch).shuffle(order)
    per_step = cfg.batch_size * cfg.grad_accum
    steps = []
    for i in range(0, len(order), per_step):
        chunk = [examples[j] for j in order[i:i + per_step]]
        steps.append([chunk[k:k + cfg.batch_size] for k in range(0, len(chunk), cfg.batch_size)])
    return steps[: cfg.max_steps_per_epoch] if cfg.max_steps_per_epoch else steps


def collate(batch: list, pad_id: int, device: str):
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), render.IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e.input_ids), torch.tensor(e.labels), 1
    return ids.to(device), mask.to(device), labels.to(device)


def nll_sum(model, batch, pad_id: int, device: str, autocast):
    """(summed next-token NLL over target tokens in nats, number of target tokens)."""
    import torch
    import torch.nn.functional as F

    ids, mask, labels = collate(batch, pad_id, device)
    with autocast():
        logits = model(input_ids=ids, attention_mask=mask).logits
    logits, target = logits[:, :-1].float(), labels[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                           ignore_index=render.IGNORE, reduction="sum")
    return loss, int((target != render.IGNORE).sum())


def evaluate(model, examples: list, pad_id: int, device: str, autocast, batch_size: int = 1) -> float | None:
    """Mean NLL per target token (nats) over `examples`; None when there are none."""
    import torch

    if not examples:
        return None
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            loss, n = nll_sum(model, examples[i:i + batch_size], pad_id, device, autocast)
            total, count = total + float(loss), count + n
    return total / count


def train_step(model, optimizer, step: list[list], lr: float, cfg: TrainConfig, pad_id, device, autocast) -> float:
    """One optimizer step over its micro-batches; loss is the token mean over the whole step."""
    import torch

    model.train()
    n_tokens = sum(e.n_target for micro in step for e in micro)
    total = 0.0
    for micro in step:
        loss, _ = nll_sum(model, micro, pad_id, device, autocast)
        (loss / n_tokens).backward()
        total += loss.item()
    for group in optimizer.param_groups:
        group["lr"] = lr
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / n_tokens


def autocast_for(device: str, precision: str):
    import contextlib

    import torch

    if precision == "bf16" or (precision == "auto" and device == "cuda"):
        return lambda: torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _check_resume(run: dict, cfg: TrainConfig, data_sha: str, base_sha: str) -> None:
    saved = run["config"]
    diff = [k for k, v in cfg.to_dict().items() if k not in RESUMABLE and saved.get(k) != v]
    if "epochs" in RESUMABLE and saved["epochs"] != cfg.epochs and cfg.lr_schedule != "constant":
        diff.append("epochs (the cosine schedule depends on it)")
    if diff:
        raise TrainError(f"{cfg.out_dir} was trained with a different config ({', '.join(diff)}): resume with the "
                         f"same config, or start a new run with another --out-dir")
    if run["data"]["sha256"] != data_sha:
        raise TrainError(f"{cfg.data} changed since this run started: start a new run with another --out-dir")
    if run["base"]["sha256"] != base_sha:
        raise TrainError(f"the base model {cfg.base} changed since this run started: start a new run")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, loaded=None) -> Path:
    """Run (or continue) the fine-tune described by `cfg`; returns the run folder.

    `loaded` is an already loaded `(model, tokenizer, resolved)` from `model.load_base` (tests reuse
    one load); it must be a plain base model, and training wraps it with LoRA in place.
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from tqdm import tqdm

    from . import model as base_model

    out = Path(cfg.out_dir)
    run_path, ckpt_path = out / RUN_FILE, out / CHECKPOINT_FILE
    if run_path.exists() and not resume:
        done = len(read_json(out / METRICS_FILE)["epochs"]) - 1 if (out / METRICS_FILE).exists() else 0
        saved = read_json(run_path)["config"]
        if done >= cfg.epochs and all(saved.get(k) == v for k, v in cfg.to_dict().items() if k not in RESUMABLE):
            log.info("%s already holds all %d epochs of this run: nothing to do", out, cfg.epochs)
            return out
        raise TrainError(f"{out} already holds a run ({done} of {read_json(run_path)['config']['epochs']} epochs "
                         "done): pass --resume to continue it, or choose another --out-dir")
    if resume and not run_path.exists():
        raise TrainError(f"nothing to resume in {out}: run without --resume to start")
    if resume and not ckpt_path.exists():
        resume = False   # interrupted before its first epoch ended: starting over is the same run
    annotations.load(cfg.data)   # fail on bad data before the slow model load
    device = base_model.pick_device(cfg.device)
    base_model.set_threads(cfg.threads)
    t_load = time.time()
    model, tokenizer, base = loaded or base_model.load_base(cfg.base, device)
    data = prepare(cfg, tokenizer, base.path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else render.end_of_turn_id(
        tokenizer, render.chat_formatter(base.path))
    model = base_model.add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, cfg.seed)
    autocast = autocast_for(device, cfg.precision)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    log.info("loaded %s on %s in %.0f s; %d train / %d held-out examples, up to %d tokens; %d LoRA parameters",
             base.name, device, time.time() - t_load, data.info["n_train"], data.info["n_heldout"],
             data.info["tokens_max"], sum(p.numel() for p in params))

    base_info = {"name": base.name, "file": base.path.name, "sha256": base.sha256}
    if resume:
        run = read_json(run_path)
        _check_resume(run, cfg, data.info["sha256"], base.sha256)
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        metrics = read_json(out / METRICS_FILE)
        start = ckpt["epoch"]
        metrics["epochs"] = metrics["epochs"][: start + 1]
        set_peft_model_state_dict(model, load_file(out / EPOCHS_DIR / f"epoch-{start}" / "adapter_model.safetensors"))
        optimizer.load_state_dict(ckpt["optimizer"])
        run["config"] = cfg.to_dict()
        write_json(run_path, run)
        log.info("resuming %s after epoch %d", out, start)
    else:
        out.mkdir(parents=True, exist_ok=True)
        run = {"config": cfg.to_dict(), "base": base_info, "data": data.info, "device": device,
               "device_name": provenance.device_name(device),
               "threads": torch.get_num_threads(), "versions": provenance.versions(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(run_path, run)
        atomic.write_text(out / "config.toml", cfg.to_toml())
        base_loss = evaluate(model, data.heldout, pad_id, device, autocast, cfg.batch_size)
        metrics = {"epochs": [{"epoch": 0, "train_loss": None, "heldout_loss": base_loss, "steps": 0, "seconds": 0.0}]}
        write_json(out / METRICS_FILE, metrics)
        start = 0
        log.info("held-out loss of the base model: %s", _fmt(base_loss))

    steps_per_epoch = len(plan_epoch(data.train, cfg, 1))
    total_steps = steps_per_epoch * cfg.epochs
    for epoch in range(start + 1, cfg.epochs + 1):
        t0 = time.time()
        torch.manual_seed(cfg.seed * 1000 + epoch)   # dropout masks depend on (seed, epoch) only
        plan = plan_epoch(data.train, cfg, epoch)
        losses = []
        bar = tqdm(plan, desc=f"epoch {epoch}/{cfg.epochs}", unit="step", disable=not progress, leave=False)
        for i, step in enumerate(bar):
            global_step = (epoch - 1) * steps_per_epoch + i
            losses.append(train_step(model, optimizer, step, lr_at(global_step, cfg, total_steps), cfg,
                                     pad_id, device, autocast))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        heldout = evaluate(model, data.heldout, pad_id, device, autocast, cfg.batch_size)
        _save_epoch(model, optimizer, out, epoch)
        seconds = time.time() - t0
        metrics["epochs"].append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "heldout_loss": heldout,
                                  "steps": len(plan), "seconds": seconds})
        write_json(out / METRICS_FILE, metrics)
        log.info("epoch %d/%d: train loss %.4f, held-out loss %s, %.0f s (%.1f s/step)", epoch, cfg.epochs,
                 metrics["epochs"][-1]["train_loss"], _fmt(heldout), seconds, seconds / max(1, len(plan)))
    return out


def _save_epoch(model, optimizer, out: Path, epoch: int) -> None:
    """Adapter folder, then checkpoint, each written under a temp name and renamed into place."""
    import torch

    with atomic_dir(out / EPOCHS_DIR / f"epoch-{epoch}") as tmp:
        model.save_pretrained(str(tmp), save_embedding_layers=False)   # LoRA only; skips a base-config lookup
    with atomic.atomic_path(out / CHECKPOINT_FILE) as tmp:
        torch.save({"epoch": epoch, "optimizer": optimizer.state_dict()}, tmp)


def _fmt(x) -> str:
    return "n/a (no held-out annotations)" if x is None else f"{x:.4f}"
