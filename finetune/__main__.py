"""Rebuild the CQA model from chain-of-thought annotations.

    python -m finetune validate finetune/data/cqa.jsonl
    python -m finetune audit finetune/data/cqa.jsonl [--json] [--unlabelled F.jsonl --text-field F]
    python -m finetune preview finetune/data/cqa.jsonl --n 2
    python -m finetune train --config finetune/configs/cqa.toml [--resume] [--<field> VALUE ...]
    python -m finetune export [--run DIR] [--epoch N | --all-epochs] [--merge] [--to models/cqa]
    python -m finetune check [--run DIR] [--epoch N]   # llama.cpp vs transformers on held-out text
    python -m finetune bench --config finetune/configs/cqa.toml
    python -m finetune config                      # the default config as TOML, with help lines
    python -m finetune push --repo OWNER/NAME [--private] [--dry-run]       # the shipped adapter, a model card
    python -m finetune push-data --repo OWNER/NAME [--private] [--dry-run]  # the corpus, a dataset card
    python -m finetune prefer --config finetune/configs/prefer-dpo.toml   # preference tuning (finetune/prefer.py)
    python -m finetune prefer-briefs                                      # its training briefs' audit

User errors (`assistant.errors.UserError`) print one line and exit 1; tracebacks are for bugs.
Environment variables are read here only, into `Settings`: HF_HUB_OFFLINE (push refuses to try).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from assistant.errors import UserError

from . import config as cfgmod

log = logging.getLogger("finetune")
TRUE = ("1", "true", "yes", "on")   # what huggingface_hub takes as a true HF_HUB_OFFLINE


@dataclass(frozen=True)
class Settings:
    """What the environment says, read once at the entry point and passed down.

    >>> Settings.from_env({"HF_HUB_OFFLINE": " ON "}), Settings.from_env({})
    (Settings(hub_offline=True), Settings(hub_offline=False))
    """
    hub_offline: bool = False   # HF_HUB_OFFLINE: the Hub cannot be reached, so push stops before trying

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        return cls(hub_offline=env.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE)


class _Stderr(logging.Handler):
    """Progress messages to whatever sys.stderr is at the time (it may be swapped, e.g. by pytest)."""

    def emit(self, record):
        print(record.getMessage(), file=sys.stderr)


def cmd_validate(a) -> int:
    from . import annotations

    anns, problems = annotations.read(a.path)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {a.path}", file=sys.stderr)
        return 1
    print(f"{a.path}: {len(anns)} annotations, all valid")
    return 0


def cmd_audit(a) -> int:
    from . import annotations, audit

    anns = annotations.load(a.path)
    report = {"coverage": audit.coverage(anns)}
    if a.unlabelled:
        report["estimate"] = audit.estimate(anns, Path(a.unlabelled), a.text_field)
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(audit.format_coverage(report["coverage"]))
        if "estimate" in report:
            print(audit.format_estimate(report["estimate"]))
    return 0


def cmd_preview(a) -> int:
    from assistant import catalog

    from . import annotations, render

    anns = annotations.load(a.path)
    if a.id:
        anns = [x for x in anns if x.id in a.id.split(",")]
    base = catalog.resolve(a.base)
    fmt = render.chat_formatter(base.path)
    tokenizer = None
    if a.tokens:
        from .model import load_tokenizer
        tokenizer = load_tokenizer(base.path)
        end = render.end_of_turn_id(tokenizer, fmt)
    for ann in anns[: a.n]:
        r = render.render(ann, fmt)
        print(f"===== {ann.id} ({ann.split}) =====")
        print(r.prompt, end="")
        print("\n----- loss on the assistant turn below -----")
        print(r.completion)
        if tokenizer is not None:
            ex = render.tokenize(r, tokenizer, end)
            print(f"----- {len(ex.input_ids)} tokens: {len(ex.input_ids) - ex.n_target} prompt, "
                  f"{ex.n_target} assistant (incl. end of turn)")
    return 0


def cmd_train(a) -> int:
    from . import train

    cfg = cfgmod.from_args(a, a.config)
    out = train.train(cfg, resume=a.resume, progress=not a.no_progress)
    metrics = train.read_json(out / train.METRICS_FILE)
    print(f"{'epoch':>5} {'train loss':>11} {'held-out':>9} {'seconds':>8}")
    for e in metrics["epochs"]:
        tl = "-" if e["train_loss"] is None else f"{e['train_loss']:.4f}"
        hl = "-" if e["heldout_loss"] is None else f"{e['heldout_loss']:.4f}"
        print(f"{e['epoch']:>5} {tl:>11} {hl:>9} {e['seconds']:>8.0f}")
    print(f"adapters in {out / train.EPOCHS_DIR}; next: python -m finetune export --run {out} --all-epochs")
    return 0


def cmd_export(a) -> int:
    from . import export

    run = Path(a.run) if a.run else Path(cfgmod.TrainConfig.load(a.config).out_dir)
    epochs = export.epochs_of(run) if a.all_epochs else ([a.epoch] if a.epoch else None)
    quants = tuple(q for q in a.quant.split(",") if q) if a.merge else ()
    m = export.export_run(run, epochs, dtype=a.dtype, merge=a.merge, merge_dtype=a.merge_dtype, quants=quants,
                          to=Path(a.to) if a.to else None, force=a.force)
    for name, f in m["files"].items():
        print(f"{run / 'gguf' / name}  {f['bytes'] / 2**20:.1f} MiB  sha256 {f['sha256'][:12]}")
    print(f"manifest: {run / 'manifest.json'}" + (f"; installed in {a.to}" if a.to else ""))
    return 0


def cmd_check(a) -> int:
    from . import crosscheck

    run = Path(a.run) if a.run else Path(cfgmod.TrainConfig.load(a.config).out_dir)
    r = crosscheck.check_run(run, a.epoch, a.n)
    print(f"epoch {r['epoch']}: {r['tokens']} tokens; log-prob shift in llama.cpp vs transformers: "
          f"Pearson r = {r['pearson_r']:.3f} (mean |shift| {r['llama_mean_abs_shift']:.3f} vs "
          f"{r['hf_mean_abs_shift']:.3f} nats/token)")
    if not r["ok"]:
        print(f"error: r <= {crosscheck.MIN_R}: llama.cpp does not apply this adapter as trained", file=sys.stderr)
        return 1
    return 0


def cmd_bench(a) -> int:
    from . import bench

    cfg = cfgmod.from_args(a, a.config)
    result = bench.bench(cfg, steps=a.steps, lengths=tuple(a.seq_len))
    print(json.dumps(result, indent=2) if a.json else bench.format_bench(result))
    return 0


def cmd_push(a) -> int:
    from . import hub

    if a.verb == "push":
        out, files, kind = Path(a.out or hub.STAGE / "model"), None, "model"
        files = hub.stage_model(out)
    else:
        out, kind = Path(a.out or hub.STAGE / "dataset"), "dataset"
        files = hub.stage_data(out)
    print(f"staged {out} ({len(files)} files): " + ", ".join(files))
    if a.dry_run:
        print(f"dry run: nothing uploaded; `python -m finetune {a.verb} --repo {a.repo}` uploads this folder "
              f"to the Hub {kind} repo {a.repo}")
        return 0
    url = hub.upload(out, a.repo, kind, a.private, offline=a.settings.hub_offline)
    print(f"pushed to {a.repo}: {url}")
    return 0


def cmd_config(a) -> int:
    print(cfgmod.from_args(a, a.config).to_toml(), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("validate", help="check an annotation file; every problem as file:line: field: message")
    s.add_argument("path")
    s.set_defaults(func=cmd_validate)
    s = sub.add_parser("audit", help="coverage of reasoning steps by source and dimension")
    s.add_argument("path")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--unlabelled", help="JSON Lines of other chain-of-thought data to estimate coverage for")
    s.add_argument("--text-field", default="text", help="field holding its text (dots for nesting)")
    s.set_defaults(func=cmd_audit)
    s = sub.add_parser("preview", help="show annotations rendered as training chat examples")
    s.add_argument("path")
    s.add_argument("--n", type=int, default=2, help="how many")
    s.add_argument("--id", help="comma-separated annotation ids to show")
    s.add_argument("--base", default="smollm2-135m", help="base model whose chat template to use")
    s.add_argument("--tokens", action="store_true", help="count tokens (loads the tokenizer, ~5-40 s)")
    s.set_defaults(func=cmd_preview)
    _config_verb(sub, "train", cmd_train, "train the LoRA adapter")
    s = sub.add_parser("export", help="GGUF adapter(s), optional merged + quantized model, manifest")
    s.add_argument("--run", help="run folder (default: out_dir of --config)")
    s.add_argument("--config", default=cfgmod.DEFAULT_CONFIG, help="config whose out_dir is the run")
    s.add_argument("--epoch", type=int, help="epoch to export (default: the last finished)")
    s.add_argument("--all-epochs", action="store_true", help="export every finished epoch (eval compares them)")
    s.add_argument("--dtype", choices=("f16", "f32"), default="f16", help="adapter tensor type")
    s.add_argument("--merge", action="store_true", help="also write base + adapter as one GGUF, then quantize")
    s.add_argument("--merge-dtype", choices=("f16", "f32"), default="f16", help="merged model tensor type")
    s.add_argument("--quant", default="Q8_0,Q4_K_M", help="quantizations of the merged model (with --merge)")
    s.add_argument("--to", help="copy the (last) exported adapter + manifest into this folder, e.g. models/cqa")
    s.add_argument("--force", action="store_true", help="rewrite files that exist")
    s.set_defaults(func=cmd_export)
    s = sub.add_parser("check", help="does llama.cpp apply the exported adapter as transformers does?")
    s.add_argument("--run", help="run folder (default: out_dir of --config)")
    s.add_argument("--config", default=cfgmod.DEFAULT_CONFIG, help="config whose out_dir is the run")
    s.add_argument("--epoch", type=int, help="epoch (default: the last finished)")
    s.add_argument("--n", type=int, default=4, help="held-out annotations to score")
    s.set_defaults(func=cmd_check)
    for verb, text in (("push", "upload the shipped adapter, its manifest, report and a model card to the Hub"),
                       ("push-data", "upload the annotation corpus with a dataset card to the Hub")):
        s = sub.add_parser(verb, help=text)
        s.add_argument("--repo", required=True, help="Hub repo OWNER/NAME (created if missing)")
        s.add_argument("--private", action="store_true", help="create the repo private")
        s.add_argument("--dry-run", action="store_true", help="write the folder and list its files; upload nothing")
        s.add_argument("--out", help="where to stage the folder (default finetune/runs/hub/model|dataset)")
        s.set_defaults(func=cmd_push)
    _config_verb(sub, "bench", cmd_bench, "seconds per training step and per epoch")
    _config_verb(sub, "config", cmd_config, "print a config as TOML (defaults, or --config + flags)")
    from . import prefer_cli
    prefer_cli.add_parsers(sub)
    return p


def _config_verb(sub, verb: str, func, text: str) -> None:
    """A verb whose flags are the config's fields (train, bench, config)."""
    s = sub.add_parser(verb, help=text)
    s.add_argument("--config", default=cfgmod.DEFAULT_CONFIG if verb != "config" else None,
                   help=f"TOML config file (default {cfgmod.DEFAULT_CONFIG})")
    if verb == "train":
        s.add_argument("--resume", action="store_true", help="continue the run in out_dir after its last epoch")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
    if verb == "bench":
        s.add_argument("--steps", type=int, default=3, help="timed steps per length")
        s.add_argument("--seq-len", type=int, nargs="*", default=[512], help="sequence lengths to time")
        s.add_argument("--json", action="store_true", help="print JSON")
    cfgmod.add_flags(s.add_argument_group("config fields (override the file)"))
    s.set_defaults(func=func)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.settings = Settings.from_env(os.environ if env is None else env)
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        log.addHandler(_Stderr())
    log.setLevel(logging.INFO)
    try:
        return args.func(args)
    except UserError as e:           # config, annotations, training, export, Hub, catalog, brief: one line
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:          # output piped into `head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("interrupted: `python -m finetune train --resume` continues after the last finished epoch",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
