"""The command line of preference tuning: `prefer` (the pipeline) and `prefer-briefs` (the training briefs' audit).

    python -m finetune prefer-briefs                                   # spread + disjointness, no model
    python -m finetune prefer --config finetune/configs/prefer-dpo.toml [--stage sample] [--<field> V]
    python -m finetune prefer --config finetune/configs/prefer-rft.toml --print-config
"""
from __future__ import annotations

import json

from . import prefer_config as pc

DEFAULT = "finetune/configs/prefer-dpo.toml"


def add_parsers(sub) -> None:
    s = sub.add_parser("prefer", help="preference tuning from the judge's rewards (DPO or rejection sampling)")
    s.add_argument("--config", default=DEFAULT, help=f"TOML config (default {DEFAULT})")
    s.add_argument("--stage", default="watch", choices=("briefs", "judge", "sample", "pairs", "train", "export", "watch"),
                   help="run the stages up to and including this one (default: watch, i.e. all); done work is skipped")
    s.add_argument("--print-config", action="store_true", help="print the config as TOML and stop")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    pc.add_flags(s.add_argument_group("config fields (override the file)"))
    s.set_defaults(func=cmd_prefer)
    b = sub.add_parser("prefer-briefs", help="the training briefs of `prefer`: spread and disjointness audit")
    b.add_argument("--config", default=DEFAULT, help=f"TOML config whose brief files to read (default {DEFAULT})")
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=cmd_briefs)


def cmd_prefer(a) -> int:
    from . import prefer

    cfg = pc.from_args(a)
    if a.print_config:
        print(cfg.to_toml(), end="")
        return 0
    result = prefer.run(cfg, prefer.STAGES[: prefer.STAGES.index(a.stage) + 1], progress=not a.no_progress)
    print(f"{result['n_briefs']} training briefs")
    if "judge" in result:
        print(f"judge: {result['judge']['name']} ({result['judge']['why']})")
    if "counts" in result:
        print("pairs: " + json.dumps(result["counts"]))
    if "gguf" in result:
        print(f"adapter: {result['gguf']}; manifest: {cfg.out_dir}/manifest.json")
    if "watch" in result:
        from .prefer import report_md
        print(report_md(result["watch"]), end="")
    return 0


def cmd_briefs(a) -> int:
    from . import prefer

    cfg = pc.PreferConfig.load(a.config)
    _, audit = prefer.load_briefs(cfg)
    if a.json:
        print(json.dumps(audit, indent=2, ensure_ascii=False))
        return 0
    from .prefer_briefs import format_spread
    print(format_spread(audit["spread"]))
    d = audit["disjointness"]
    print(f"disjoint from the evaluation sets: every brief shares at most {d['limit']:.0%} of its word bigrams; "
          "closest: " + ", ".join(f"{tid} {share:.0%} with {label}" for share, tid, label in d["worst"][:3]))
    return 0
