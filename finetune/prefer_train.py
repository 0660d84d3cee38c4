"""Training on the judge's preferences, on top of the starting adapter: DPO with TRL's DPOTrainer (recipe "dpo") or
fine-tuning on the chosen drafts alone with the project's own train loop (recipe "rft").

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --stage train

Both start from the starting writer's GGUF adapter loaded into peft (`finetune/start_adapter.py`), trainable;
DPO's reference is the same adapter frozen (TRL copies a pretrained peft adapter to a "ref" adapter, so the
first step's loss is exactly log 2). Prompts are the app's (`finetune/render.py`: the user turn the app sends,
the assistant turn "Passage:" and the passage, then the end of turn). Each run folder gets
epochs/epoch-N/ (a peft adapter folder, what `finetune/export.py` writes GGUF from) and metrics.json.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

from .annotations import Annotation
from .files import read_json, write_json
from .prefer_config import PreferConfig

log = logging.getLogger(__name__)

EPOCHS_DIR, METRICS_FILE, RUN_FILE, TRL_DIR = "epochs", "metrics.json", "run.json", "trl"
SAVE_STEPS = 10   # DPO checkpoints every 10 optimizer steps (~40 pairs): a stopped run resumes from the last one
CALLBACKS: list = []   # extra transformers TrainerCallbacks for DPO (tests stop a run mid-way with one)
ELAPSED_FILE = "elapsed.json"   # in each DPO checkpoint: training seconds up to it, so a resumed run's time adds up


def load_policy(cfg: PreferConfig, loaded=None):
    """(peft model holding the starting adapter, trainable; tokenizer; resolved base). `loaded`: a plain
    `(model, tokenizer, resolved)` from `model.load_base`, deep-copied so the caller's stays plain."""
    from . import model as base_model
    from .start_adapter import load_trainable

    base_model.set_threads(cfg.threads)
    if loaded is None:
        model, tokenizer, base = base_model.load_base(cfg.base, base_model.pick_device(cfg.device))
    else:
        model, tokenizer, base = copy.deepcopy(loaded[0]), loaded[1], loaded[2]
    # transformers tags a model read from GGUF as GGUF-quantized although every tensor is dequantized to float32;
    # its Trainer refuses such a model, and there is nothing quantized to protect: drop the tag.
    model.hf_quantizer, model.is_quantized = None, False
    return load_trainable(model, cfg.start_adapter, base.path, cfg.lora_dropout), tokenizer, base


def as_annotation(brief_id: str, brief, passage: str) -> Annotation:
    """A draft as the corpus's kind of example (no reasoning: the passage target renders none)."""
    return Annotation(brief_id, "", brief, (), passage, "train")


def rft_examples(chosen: list[dict], briefs: dict, tokenizer, base_path: Path, max_len: int) -> list:
    from . import render

    fmt = render.chat_formatter(base_path)
    end = render.end_of_turn_id(tokenizer, fmt)
    return [render.tokenize(render.render(as_annotation(c["brief"], briefs[c["brief"]], c["chosen"]["text"]), fmt,
                                          "passage"), tokenizer, end, max_len, truncate=True) for c in chosen]


def dpo_rows(pairs: list[dict], briefs: dict, base_path: Path) -> list[dict]:
    """{"prompt", "chosen", "rejected"} strings: the app's prompt, and "Passage:" + passage after it (TRL adds the
    end-of-turn token, <|im_end|> for SmolLM2, its tokenizer's eos)."""
    from . import render

    fmt = render.chat_formatter(base_path)
    rows = []
    for p in pairs:
        b = briefs[p["brief"]]
        r_c = render.render(as_annotation(p["brief"], b, p["chosen"]["text"]), fmt, "passage")
        r_r = render.render(as_annotation(p["brief"], b, p["rejected"]["text"]), fmt, "passage")
        rows.append({"prompt": r_c.prompt.text, "chosen": r_c.completion, "rejected": r_r.completion})
    return rows


def train_rft(cfg: PreferConfig, chosen: list[dict], briefs: dict, progress: bool = True, loaded=None) -> dict:
    """Fine-tune the starting adapter on the chosen drafts with finetune/train.py's loop; metrics per epoch."""
    import torch
    from tqdm import tqdm

    from . import render, train

    out = Path(cfg.out_dir)
    model, tokenizer, base = load_policy(cfg, loaded)
    device = next(model.parameters()).device.type
    tcfg = cfg.train_config()
    examples = rft_examples(chosen, briefs, tokenizer, base.path, cfg.max_seq_len)
    if not examples:
        raise train.TrainError("no chosen drafts to train on: every brief's drafts failed the guards")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else render.end_of_turn_id(
        tokenizer, render.chat_formatter(base.path))
    autocast = train.autocast_for(device, cfg.precision)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = len(train.plan_epoch(examples, tcfg, 1))
    metrics = {"recipe": "rft", "n_examples": len(examples), "epochs": []}
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.time()
        torch.manual_seed(cfg.seed * 1000 + epoch)
        plan = train.plan_epoch(examples, tcfg, epoch)
        losses = []
        for i, step in enumerate(tqdm(plan, desc=f"rft epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False)):
            lr = train.lr_at((epoch - 1) * steps_per_epoch + i, tcfg, steps_per_epoch * cfg.epochs)
            losses.append(train.train_step(model, optimizer, step, lr, tcfg, pad_id, device, autocast))
        train._save_epoch(model, optimizer, out, epoch)
        metrics["epochs"].append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "steps": len(plan),
                                  "seconds": time.time() - t0})
        write_json(out / METRICS_FILE, metrics)
        log.info("rft epoch %d: loss %.4f, %.0f s", epoch, metrics["epochs"][-1]["train_loss"], time.time() - t0)
    return metrics


def train_dpo(cfg: PreferConfig, pairs: list[dict], briefs: dict, progress: bool = True, loaded=None) -> dict:
    """DPO with TRL's DPOTrainer on the peft model (reference: the starting adapter, frozen); the last epoch's
    adapter is saved as epochs/epoch-{epochs}. Metrics: TRL's log per optimizer step (loss, reward margins)."""
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint
    from trl import DPOConfig, DPOTrainer

    from . import train
    from .files import atomic_dir

    out = Path(cfg.out_dir)
    if not pairs:
        raise train.TrainError("no preference pairs: no brief had a passing draft and a clearly worse one")
    model, tokenizer, base = load_policy(cfg, loaded)
    device = next(model.parameters()).device.type
    rows = dpo_rows(pairs, briefs, base.path)
    args = DPOConfig(output_dir=str(out / TRL_DIR), beta=cfg.beta, learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
                     max_steps=cfg.max_steps * cfg.epochs if cfg.max_steps else -1, warmup_steps=cfg.warmup_steps,
                     lr_scheduler_type="constant_with_warmup", per_device_train_batch_size=cfg.batch_size,
                     gradient_accumulation_steps=cfg.grad_accum, max_length=cfg.max_seq_len, seed=cfg.seed,
                     logging_steps=1, save_strategy="steps", save_steps=SAVE_STEPS, save_total_limit=1,
                     precompute_ref_log_probs=True,   # the frozen reference is read once, not once per epoch
                     report_to=[], disable_tqdm=not progress,
                     use_cpu=device == "cpu", bf16=cfg.precision == "bf16" or (cfg.precision == "auto" and device == "cuda"),
                     dataloader_num_workers=0, gradient_checkpointing=False)   # 135M: memory is no issue, time is
    t0 = time.time()
    resume = get_last_checkpoint(str(out / TRL_DIR)) if (out / TRL_DIR).is_dir() else None
    before = _elapsed_at(resume)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         callbacks=[_elapsed_callback(before, t0), *CALLBACKS])
    state = read_json(Path(resume) / "trainer_state.json") if resume else None
    if state and state["global_step"] >= state["max_steps"]:
        # stopped after its last checkpoint: the checkpoint is the trained adapter (Trainer would train one step more)
        log.info("DPO finished in %s: its adapter is taken as is", resume)
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file
        set_peft_model_state_dict(model, load_file(str(Path(resume) / "adapter_model.safetensors")), "default")
        history = state["log_history"]
    else:
        if resume:
            log.info("resuming DPO from %s", resume)
        trainer.train(resume_from_checkpoint=resume)
        history = trainer.state.log_history
    with atomic_dir(out / EPOCHS_DIR / f"epoch-{cfg.epochs}") as tmp:
        model.save_pretrained(str(tmp), selected_adapters=["default"], save_embedding_layers=False)
    steps = [h for h in history if "loss" in h]
    seconds = before + time.time() - t0       # up to the checkpoint it resumed from, then this run
    metrics = {"recipe": "dpo", "beta": cfg.beta, "n_pairs": len(rows), "seconds": seconds, "steps": steps,
               "resumed_from": Path(resume).name if resume else None, "seconds_before_resume": before,
               "epochs": [{"epoch": cfg.epochs, "steps": len(steps), "seconds": seconds,
                           "train_loss": (sum(s["loss"] for s in steps) / len(steps)) if steps else None}],
               "prompt_tokens_as_app": _same_prompt_tokens(trainer, pairs[0], briefs, tokenizer, base.path)}
    write_json(out / METRICS_FILE, metrics)
    return metrics


def _elapsed_at(checkpoint: str | None) -> float:
    """Training seconds recorded in a checkpoint (0 for none, or one saved before the time was recorded)."""
    f = Path(checkpoint) / ELAPSED_FILE if checkpoint else None
    return float(read_json(f)["seconds"]) if f and f.is_file() else 0.0


def _elapsed_callback(before: float, t0: float):
    """A TrainerCallback writing the training seconds so far into each checkpoint as it is saved."""
    from transformers import TrainerCallback

    class Elapsed(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                write_json(ckpt / ELAPSED_FILE, {"seconds": before + time.time() - t0})

    return Elapsed()


def _same_prompt_tokens(trainer, pair: dict, briefs: dict, tokenizer, base_path: Path) -> bool:
    """Does TRL's tokenization of the first prompt give the ids the app's engine sees (render.tokenize_prompt,
    the brief's text never read as control tokens)? Recorded in metrics.json; a mismatch is logged."""
    from . import render

    r = render.render(as_annotation(pair["brief"], briefs[pair["brief"]], pair["chosen"]["text"]),
                      render.chat_formatter(base_path), "passage")
    same = list(trainer.train_dataset[0]["prompt_ids"]) == render.tokenize_prompt(r.prompt, tokenizer)
    if not same:
        log.warning("TRL tokenized the first prompt differently from the app: the model trains on other ids")
    return same


# a finished run is reused, and a stopped one resumed, only if these match
TRAINING_FIELDS = ("recipe", "start_adapter", "beta", "epochs", "lr", "warmup_steps", "batch_size", "grad_accum",
                   "max_steps", "max_seq_len", "lora_dropout", "seed", "precision")


def train(cfg: PreferConfig, data: dict, briefs: dict, progress: bool = True, loaded=None, data_sha256: str = "") -> dict:
    """Run the config's recipe unless this very run (same training fields, same data) already saved its last
    epoch: then its metrics are returned. A stopped DPO run of the same fields and data resumes from its last
    checkpoint. Another config or other data in the same folder is an error."""
    from .train import TrainError

    out = Path(cfg.out_dir)
    wanted = {k: getattr(cfg, k) for k in TRAINING_FIELDS}
    identity = {"training": wanted, "data_sha256": data_sha256}
    if (out / RUN_FILE).is_file() and read_json(out / RUN_FILE) != identity:
        raise TrainError(f"{out} holds a run with other training fields or data: choose another --out-dir")
    if (out / EPOCHS_DIR / f"epoch-{cfg.epochs}" / "adapter_model.safetensors").is_file() and (out / METRICS_FILE).is_file():
        done = read_json(out / METRICS_FILE)
        if done.get("training") == wanted and done.get("data_sha256") == data_sha256:
            log.info("%s already holds epoch %d of this run: training skipped", out, cfg.epochs)
            return done
        raise TrainError(f"{out} holds a run with other training fields or data: choose another --out-dir")
    write_json(out / RUN_FILE, identity)
    if cfg.recipe == "dpo":
        metrics = train_dpo(cfg, data["pairs"], briefs, progress, loaded)
    else:
        metrics = train_rft(cfg, data["chosen"], briefs, progress, loaded)
    metrics.update(training=wanted, data_sha256=data_sha256)
    write_json(out / METRICS_FILE, metrics)
    return metrics
