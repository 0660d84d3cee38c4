"""Typed training config: one frozen dataclass, validated on construction; TOML files and CLI flags
are generated from it.

    python -m finetune train --config finetune/configs/cqa.toml --epochs 3

    >>> TrainConfig(lr=-1, epochs=0)
    Traceback (most recent call last):
    ...
    finetune.errors.ConfigError: epochs: must be >= 1, got 0; lr: must be > 0, got -1
"""
from __future__ import annotations

import argparse
import difflib
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import get_type_hints

from .errors import ConfigError  # noqa: F401 - raised here, imported from here by callers

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_CONFIG = "finetune/configs/cqa.toml"


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    data: str = _f("finetune/data/cqa.jsonl", "annotation file (JSON Lines, see finetune/FORMAT.md)")
    base: str = _f("smollm2-135m", "base model: a catalog name or a path to a .gguf file")
    out_dir: str = _f("finetune/runs/cqa", "run folder: config, checkpoint, one adapter per epoch, exports")
    epochs: int = _f(6, "passes over the training annotations (an adapter is kept after each)")
    lr: float = _f(2e-4, "peak learning rate (AdamW)")
    lr_schedule: str = _f("constant", "constant|cosine after warmup; constant keeps epoch N the same "
                                      "whatever the number of epochs")
    warmup_steps: int = _f(10, "optimizer steps of linear warmup from 0 to lr")
    weight_decay: float = _f(0.0, "AdamW weight decay on the LoRA weights")
    max_grad_norm: float = _f(1.0, "clip the gradient norm to this (0 = no clipping)")
    batch_size: int = _f(1, "sequences per forward pass (padded to the longest)")
    grad_accum: int = _f(4, "forward passes per optimizer step (effective batch = batch_size x grad_accum)")
    max_seq_len: int = _f(1536, "tokens per example, prompt included; longer examples are an error")
    truncate: bool = _f(False, "cut examples longer than max_seq_len instead of stopping with an error")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: float = _f(32.0, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = _f(0.05, "dropout on the LoRA input during training")
    target_modules: tuple[str, ...] = _f(PROJECTIONS, "linear projections that get a LoRA adapter")
    seed: int = _f(0, "seed for shuffling, LoRA init and dropout")
    device: str = _f("auto", "auto|cpu|cuda (auto: cuda when available)")
    precision: str = _f("auto", "auto|fp32|bf16 (auto: bf16 autocast on CUDA, fp32 on CPU)")
    threads: int = _f(0, "CPU threads for torch (0 = all cores)")
    max_steps_per_epoch: int = _f(0, "stop each epoch after this many optimizer steps (0 = all; for tests)")
    target: str = _f("notes+passage", "what the model learns to write: notes+passage (reason first) or passage")

    def __post_init__(self):
        problems = []
        hints = get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "target_modules" and isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
                value = tuple(value)
            if not _type_ok(value, hints[f.name]):
                problems.append(f"{f.name}: must be {_type_name(hints[f.name])}, got {value!r}")
        if problems:
            raise ConfigError("; ".join(problems))

        def need(cond, name, what):
            if not cond:
                problems.append(f"{name}: must be {what}, got {getattr(self, name)!r}")
        need(self.epochs >= 1, "epochs", ">= 1")
        need(self.target in ("notes+passage", "passage"), "target", "notes+passage or passage")
        need(self.lr > 0, "lr", "> 0")
        need(self.lr_schedule in ("constant", "cosine"), "lr_schedule", "constant or cosine")
        need(self.warmup_steps >= 0, "warmup_steps", ">= 0")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.max_grad_norm >= 0, "max_grad_norm", ">= 0")
        need(self.batch_size >= 1, "batch_size", ">= 1")
        need(self.grad_accum >= 1, "grad_accum", ">= 1")
        need(self.max_seq_len >= 16, "max_seq_len", ">= 16")
        need(self.lora_r >= 1, "lora_r", ">= 1")
        need(self.lora_alpha > 0, "lora_alpha", "> 0")
        need(0 <= self.lora_dropout < 1, "lora_dropout", "in [0, 1)")
        need(bool(self.target_modules) and set(self.target_modules) <= set(PROJECTIONS), "target_modules",
             f"a non-empty list drawn from {list(PROJECTIONS)}")
        need(self.device in ("auto", "cpu", "cuda"), "device", "auto, cpu or cuda")
        need(self.precision in ("auto", "fp32", "bf16"), "precision", "auto, fp32 or bf16")
        need(self.threads >= 0, "threads", ">= 0")
        need(self.max_steps_per_epoch >= 0, "max_steps_per_epoch", ">= 0")
        if problems:
            raise ConfigError("; ".join(problems))

    # ---- files -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "TrainConfig":
        known = [f.name for f in fields(cls)]
        problems = []
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                problems.append(f"{source}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else
                                                                    f"; known keys: {', '.join(known)}"))
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (the committed one is {DEFAULT_CONFIG})")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        return cls.from_dict({**data, **overrides}, str(path))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    def to_toml(self) -> str:
        """The config as TOML, each key preceded by its help line."""
        out = []
        for f in fields(self):
            out.append(f"# {f.metadata['help']}")
            out.append(f"{f.name} = {_toml_value(getattr(self, f.name))}")
        return "\n".join(out) + "\n"

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)


def _type_ok(value, hint) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return isinstance(value, tuple) and all(isinstance(v, str) for v in value)


def _type_name(hint) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, "a list of strings")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


# ---- command-line flags ---------------------------------------------------------------------
def add_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per config field (default None = keep the config file's value)."""
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(name, dest=f.name, type=_parse_bool, default=None, metavar="true|false",
                                help=f.metadata["help"])
        elif hint in (int, float, str):
            parser.add_argument(name, dest=f.name, type=hint, default=None, help=f.metadata["help"])
        else:
            parser.add_argument(name, dest=f.name, type=lambda s: tuple(x for x in s.split(",") if x),
                                default=None, metavar="A,B,...", help=f.metadata["help"])


def from_args(args: argparse.Namespace, config_path: str | None) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if config_path:
        return TrainConfig.load(config_path, **overrides)
    return TrainConfig(**overrides)


def _parse_bool(s: str) -> bool:
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


assert all(f.default is not MISSING for f in fields(TrainConfig)), "every field needs a default"
