"""Typed config of `python -m finetune prefer`: one frozen dataclass, validated on construction; TOML files and
command-line flags are generated from it (the pattern of finetune/config.py).

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml --print-config

    >>> PreferConfig(recipe="ppo", n_drafts=1)
    Traceback (most recent call last):
    ...
    finetune.errors.ConfigError: recipe: must be dpo or rft, got 'ppo'; n_drafts: must be 2-8, got 1
"""
from __future__ import annotations

import argparse
import difflib
import json
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import get_type_hints

from .config import TrainConfig, _f, _parse_bool, _toml_value, _type_name, _type_ok
from .errors import ConfigError

RECIPES = ("dpo", "rft")
FIDELITY = Path(__file__).resolve().parent.parent / "eval" / "results" / "fidelity" / "report.json"


def allowed_weights(report: Path = FIDELITY) -> tuple[str, ...]:
    """"served", the shipped file, and the copies that passed the fidelity gate (its committed report), so that
    writer and judge never run on weights the gate refused (Q8_0 and shipped+FA, when it last ran)."""
    passing = json.loads(report.read_text(encoding="utf-8"))["passing"] if report.is_file() else []
    return ("served", "shipped", *passing)


@dataclass(frozen=True)
class PreferConfig:
    recipe: str = _f("dpo", "dpo: preference pairs with DPO (TRL + peft); rft: fine-tune on the chosen drafts alone")
    # ---- briefs ----
    corpus: str = _f("finetune/data/cqa.jsonl", "annotation corpus whose training briefs are used ('' = none)")
    briefs: tuple[str, ...] = _f(("finetune/data/prefer-briefs.jsonl",), "brief files written for preference tuning")
    eval_briefs: tuple[str, ...] = _f(("eval/data/briefs.jsonl",), "evaluation briefs no training brief may be close to")
    eval_pairs: tuple[str, ...] = _f(("eval/data/pairs.jsonl",), "pair files whose contexts no training brief may be close to")
    limit_briefs: int = _f(0, "use only the first N training briefs (0 = all; for tests)")
    # ---- the writer, its sampler, the judge and the guards ----
    base: str = _f("smollm2-135m", "base model: a catalog name or a .gguf path")
    start_adapter: str = _f("models/cqa-passage/adapter.gguf", "the starting writer's GGUF LoRA (training starts from it)")
    template: str = _f("chat", "prompt template of writer and judge (chat|plain)")
    n_drafts: int = _f(8, "drafts per brief (seeds seed..seed+n-1), at most the app's best-of limit of 8")
    max_tokens: int = _f(160, "passage tokens per draft (the grid's budget)")
    temperature: float = _f(0.8, "sampling temperature (the grid's; the other sampler settings are the app's)")
    seed: int = _f(0, "first sampling seed; also seeds training")
    judge_report: str = _f("eval/results/pairs-shipped/report.json", "pair report the judge is chosen from")
    grid_report: str = _f("eval/results/generate-grid-lockstep/report.json", "grid report holding the guards' reference")
    guard_reference: str = _f("base α=0 N=1", "the grid setting whose means the guards are relative to")
    margin: float = _f(0.05, "a passing draft is clearly worse when its reward is this much lower (bits/budget token)")
    samples: str = _f("finetune/data/prefer-samples.jsonl", "cache of drafts and rewards, shared by the recipes")
    threads: int = _f(0, "CPU threads for llama.cpp and torch (0 = all cores)")
    weights: str = _f("served", "weights of writer and judge: served (what the app serves on this CPU), shipped, or a "
                      "copy made at first use (F32, F16, BF16; +FA: flash attention)")
    # ---- training ----
    out_dir: str = _f("finetune/runs/prefer-dpo", "run folder: data, adapter per epoch, GGUF, manifest, report")
    beta: float = _f(0.1, "DPO beta: how far the policy may move from the starting adapter")
    epochs: int = _f(2, "passes over the pairs (dpo) or chosen drafts (rft)")
    lr: float = _f(5e-5, "peak learning rate (AdamW), constant after warmup")
    warmup_steps: int = _f(5, "optimizer steps of linear warmup")
    batch_size: int = _f(1, "examples per forward pass")
    grad_accum: int = _f(4, "forward passes per optimizer step")
    max_steps: int = _f(0, "stop each epoch after this many optimizer steps (0 = all; for tests)")
    max_seq_len: int = _f(1024, "tokens per example, prompt included (longer: the prompt's start is cut)")
    lora_dropout: float = _f(0.0, "dropout on the LoRA input during training")
    device: str = _f("auto", "auto|cpu|cuda")
    precision: str = _f("auto", "auto|fp32|bf16 (auto: bf16 on CUDA)")
    round: int = _f(1, "1: drafts from CQA-passage; 2: start_adapter = a round-1 model (only if round 1 helps on the grid)")
    # ---- after training ----
    watch_drafts: int = _f(2, "drafts per brief from the trained writer for the reward-hacking watch (0 = skip)")
    install_to: str = _f("", "copy the exported adapter + manifest here (e.g. models/cqa-prefer-dpo; '' = no)")

    def __post_init__(self):
        problems = []
        hints = get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
                value = tuple(value)
            if not _type_ok(value, hints[f.name]):
                problems.append(f"{f.name}: must be {_type_name(hints[f.name])}, got {value!r}")
        if problems:
            raise ConfigError("; ".join(problems))

        def need(cond, name, what):
            if not cond:
                problems.append(f"{name}: must be {what}, got {getattr(self, name)!r}")
        need(self.recipe in RECIPES, "recipe", " or ".join(RECIPES))
        need(self.template in ("chat", "plain"), "template", "chat or plain")
        allowed = allowed_weights()
        need(self.weights in allowed, "weights", ", ".join(allowed))
        need(2 <= self.n_drafts <= 8, "n_drafts", "2-8")
        need(1 <= self.max_tokens <= 2048, "max_tokens", "1-2048")
        need(0 <= self.temperature <= 2, "temperature", "0-2")
        need(self.margin >= 0, "margin", ">= 0")
        need(self.beta > 0, "beta", "> 0")
        need(self.epochs >= 1, "epochs", ">= 1")
        need(self.lr > 0, "lr", "> 0")
        need(self.round >= 1, "round", ">= 1")
        for name in ("limit_briefs", "threads", "warmup_steps", "max_steps", "watch_drafts", "seed"):
            need(getattr(self, name) >= 0, name, ">= 0")
        need(self.watch_drafts <= 8, "watch_drafts", "0-8")
        need(self.batch_size >= 1 and self.grad_accum >= 1, "batch_size", ">= 1 (and grad_accum >= 1)")
        need(self.max_seq_len >= 64, "max_seq_len", ">= 64")
        need(0 <= self.lora_dropout < 1, "lora_dropout", "in [0, 1)")
        need(self.device in ("auto", "cpu", "cuda"), "device", "auto, cpu or cuda")
        need(self.precision in ("auto", "fp32", "bf16"), "precision", "auto, fp32 or bf16")
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def load(cls, path: str | Path, **overrides) -> "PreferConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (committed: finetune/configs/prefer-dpo.toml, "
                              "prefer-rft.toml)")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        known = [f.name for f in fields(cls)]
        bad = [f"{path}: unknown key {k!r}" + (f" (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(k, known, 1))
                                               else "") for k in data if k not in known]
        if bad:
            raise ConfigError("; ".join(bad))
        return cls(**{**data, **overrides})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_toml(self) -> str:
        return "".join(f"# {f.metadata['help']}\n{f.name} = {_toml_value(getattr(self, f.name))}\n" for f in fields(self))

    def replace(self, **changes) -> "PreferConfig":
        return replace(self, **changes)

    def train_config(self) -> TrainConfig:
        """The fields the shared train loop reads (finetune/train.py: plan_epoch, lr_at, train_step)."""
        return TrainConfig(base=self.base, out_dir=self.out_dir, epochs=self.epochs, lr=self.lr, warmup_steps=self.warmup_steps,
                           batch_size=self.batch_size, grad_accum=self.grad_accum, max_seq_len=self.max_seq_len,
                           truncate=True, lora_dropout=self.lora_dropout, seed=self.seed, device=self.device,
                           precision=self.precision, threads=self.threads, max_steps_per_epoch=self.max_steps,
                           target="passage")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per field (default None = keep the config file's value)."""
    hints = get_type_hints(PreferConfig)
    for f in fields(PreferConfig):
        name, hint, text = "--" + f.name.replace("_", "-"), hints[f.name], f.metadata["help"]
        if hint is bool:
            parser.add_argument(name, dest=f.name, type=_parse_bool, default=None, metavar="true|false", help=text)
        elif hint in (int, float, str):
            parser.add_argument(name, dest=f.name, type=hint, default=None, help=text)
        else:
            parser.add_argument(name, dest=f.name, type=lambda s: tuple(x for x in s.split(",") if x), default=None,
                                metavar="A,B,...", help=text)


def from_args(args: argparse.Namespace) -> PreferConfig:
    overrides = {f.name: getattr(args, f.name) for f in fields(PreferConfig) if getattr(args, f.name, None) is not None}
    return PreferConfig.load(args.config, **overrides) if args.config else PreferConfig(**overrides)


assert all(f.default is not MISSING for f in fields(PreferConfig)), "every field needs a default"
