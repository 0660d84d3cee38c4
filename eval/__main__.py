"""Does CQA work? Base vs CQA on paired passages, on generations, and a scorer cross-check.

    python -m eval pairs --pairs eval/data/pairs.jsonl --adapter epoch5=models/cqa/adapter.gguf --out eval/out/pairs
    python -m eval generate --briefs eval/data/briefs.jsonl --n 2 --adapter epoch5=models/cqa/adapter.gguf --out eval/out/gen
    python -m eval crosscheck --out eval/out/crosscheck
    python -m eval validate eval/data/pairs_literary.jsonl eval/data/briefs.jsonl
    python -m eval choose models/cqa/eval/report.json       # which epoch ships, by the README's rule
    python -m eval grid --cqa cqa=models/cqa/adapter.gguf --passage p=PATH --out eval/results/generate-grid
    python -m eval prefer-watch --grid G/report.json --run dpo=models/cqa-prefer-dpo     # issue 21 watch

A user's error (assistant.errors.UserError: a bad flag, file or model) is one line per problem on stderr and
exit status 1, never a traceback; anything else is a bug and keeps its traceback. This is the one place in
eval/ that reads the environment: CQA_MODEL, CQA_THREADS and CQA_CACHE give the defaults of --model,
--threads and the cache folder (eval.settings.Settings carries them down), and `pairs --ray` picks the
readers (eval.readers.LocalReaders or eval.ray_readers.RayReaders) handed to the command.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Mapping

from assistant.errors import BadInput, UserError

from .pairs import BRIEF_FIELDS, GROUPS, FormatError, default_pairs_files, load_briefs, load_pairs, read_jsonl
from .readers import LocalReaders
from .settings import TEMPLATES, Settings, default_cache_path
from .writers import NOTES_TOKENS

OUT = Path("eval/out")
INSTALL = {"llama_cpp": "pip install llama-cpp-python", "scipy": "pip install scipy",
           "matplotlib": "pip install matplotlib", "transformers": "pip install transformers torch"}


def _common(p: argparse.ArgumentParser, out: str, env: Mapping[str, str]) -> None:
    p.add_argument("--model", default=env.get("CQA_MODEL") or None, help="base model: catalog name (smollm2-135m, "
                   "gemma3-270m) or .gguf path (default: $CQA_MODEL or smollm2-135m)")
    p.add_argument("--adapter", action="extend", nargs="+", default=[], metavar="NAME=PATH",
                   help="a LoRA adapter (GGUF) to compare with the base; repeat for several (e.g. one per epoch)")
    p.add_argument("--template", choices=TEMPLATES, default="chat",
                   help="prompt format (default chat); it changes the results, so it is reported")
    p.add_argument("--out", type=Path, default=OUT / out, help=f"output folder (default eval/out/{out})")
    p.add_argument("--threads", type=int, default=int(env.get("CQA_THREADS") or 0) or None,
                   help="CPU threads (default $CQA_THREADS or all cores)")
    cache = default_cache_path(env.get("CQA_CACHE"))
    p.add_argument("--cache", type=Path, default=cache, help=f"score cache (default {cache})")
    p.add_argument("--no-cache", action="store_true", help="score everything afresh, keep nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def settings(args, argv: list[str] | None) -> Settings:
    """The run settings of a command's flags (whose defaults came from the environment)."""
    ran_as_script = argv is None and sys.argv and sys.argv[0].endswith("__main__.py")
    return Settings(model=args.model, template=args.template, threads=args.threads,
                    cache=None if args.no_cache else args.cache, progress=not args.quiet,
                    command=" ".join(["python -m eval"] + sys.argv[1:]) if ran_as_script else None)


def cmd_pairs(args) -> int:
    from .pair_eval import evaluate_pairs, print_summary

    if args.ray:      # spread over Ray actors, one CPU and one llama.cpp thread each
        from .ray_readers import RayReaders
        readers = RayReaders(args.ray)
    else:
        readers = LocalReaders(args.settings.threads)
    report, paths = evaluate_pairs(args.pairs or default_pairs_files(), args.out, args.settings, readers,
                                   adapters=args.adapter, limit=args.limit, group=args.group)
    print_summary(report)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_generate(args) -> int:
    from .generate import run_generate

    paths = run_generate(args, args.settings, LocalReaders(args.settings.threads))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_grid(args) -> int:
    from .grid_report import run_grid

    paths = run_grid(args, args.settings, LocalReaders(args.settings.threads))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_crosscheck(args) -> int:
    from .crosscheck import run_crosscheck

    ok, paths = run_crosscheck(args, args.settings)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if ok else 1


def cmd_fidelity(args) -> int:
    from assistant.pool import CQA_ADAPTER, PASSAGE_ADAPTER

    from .fidelity import run
    report = run(args.out, {"base": None, "CQA": CQA_ADAPTER, "CQA-passage": PASSAGE_ADAPTER},
                 args.copies.split(","), args.threads, args.cache_dir, Path("eval/data/briefs.jsonl"))
    print(f"wrote {args.out}/report.md; passing the gate: {', '.join(report['passing']) or 'none'}")
    return 0


def cmd_validate(args) -> int:
    """Pair files or brief files (told apart by their fields); every problem listed."""
    for f in args.files:
        rows, _ = read_jsonl(Path(f))
        is_brief = bool(rows) and "task" in rows[0][1] and "high" not in rows[0][1]
        n = len(load_briefs([f]) if is_brief else load_pairs([f]))
        print(f"{f}: {n} {'briefs' if is_brief else 'pairs'}, valid")
    return 0


def cmd_choose(args) -> int:
    """Print the epoch the README's rule picks from a pair report (nothing ships when none is positive)."""
    from .choose import choose

    try:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BadInput(f"{args.report}: not a JSON report ({e})") from e
    try:
        c = choose(report)
    except BadInput as e:
        raise BadInput(f"{args.report}: {e}") from e
    for epoch, m in sorted(c.means.items()):
        print(f"epoch {epoch}: mean literary Δ(ΔI) {m:+.4f} bits/token")
    print(f"choice: {c.reason}")
    if args.json:
        print(json.dumps({"epoch": c.epoch, "reason": c.reason}))
    return 0


def cmd_prefer_watch(args) -> int:
    from .prefer_watch import run

    print(run(args.run, args.grid, args.start, args.reader), end="")
    return 0


def parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    ap = argparse.ArgumentParser(prog="python -m eval", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, out: str) -> None:
        _common(p, out, env)

    p = sub.add_parser("pairs", help="ΔI on paired passages, base vs each adapter, with statistics")
    p.add_argument("--pairs", action="extend", nargs="+", type=Path, default=[], metavar="FILE",
                   help="pair files (JSON Lines); several are concatenated (default eval/data/pairs.jsonl)")
    p.add_argument("--group", choices=GROUPS, default=None, help="only this group's pairs")
    p.add_argument("--limit", type=int, default=None, help="only the first N pairs (a quick look)")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="spread the scoring over Ray actors (one per CPU of the cluster, one thread each)")
    common(p, "pairs")
    p.set_defaults(func=cmd_pairs)

    g = sub.add_parser("generate", help="drafts from base and adapters on the same briefs and seeds, scored")
    g.add_argument("--briefs", action="extend", nargs="+", type=Path, default=[], metavar="FILE",
                   help=f"brief files, one JSON object per line with {', '.join(BRIEF_FIELDS)} "
                   "(default eval/data/briefs.jsonl)")
    g.add_argument("--n", type=int, default=2, help="drafts per brief and variant (seeds 0..n-1)")
    g.add_argument("--limit", type=int, default=None, help="only the first N briefs")
    g.add_argument("--reader", action="extend", nargs="+", default=[], metavar="MODEL",
                   help="models that score the drafts (default: the base, plus gemma3-270m when installed)")
    g.add_argument("--max-tokens", type=int, default=160, help="passage tokens per draft at most")
    g.add_argument("--notes-tokens", type=int, default=NOTES_TOKENS,
                   help=f"extra tokens an adapter may spend on its notes before the passage (default {NOTES_TOKENS})")
    g.add_argument("--temperature", type=float, default=0.8)
    common(g, "generate")
    from .grid_report import add_parser as add_grid
    add_grid(sub, common).set_defaults(func=cmd_grid)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("crosscheck", help="the scorer through llama.cpp vs transformers on the same GGUF")
    c.add_argument("--pairs", action="extend", nargs="+", type=Path, default=[], metavar="FILE",
                   help="texts come from these pair files (default eval/data/pairs.jsonl)")
    c.add_argument("--texts", type=int, default=20, help="how many texts (high and degraded of texts/2 pairs)")
    c.add_argument("--min-r", type=float, default=None, help="required Pearson r of per-text I (default 0.95)")
    c.add_argument("--max-mad", type=float, default=None,
                   help="required per-token mean absolute difference, bits (default 0.20)")
    common(c, "crosscheck")
    c.set_defaults(func=cmd_crosscheck)

    f = sub.add_parser("fidelity", help="may a faster copy of the weights be served? copies vs transformers fp32")
    f.add_argument("--copies", default="F32,F16,BF16,Q8_0,shipped+FA,F32+FA,F16+FA,BF16+FA",
                   help="candidates: copies (assistant/copies.py TYPES) and, with +FA, any of them or the shipped file "
                        "with flash attention (Q8_0+FA left out: Q8_0 fails the gate on its weights alone)")
    f.add_argument("--out", type=Path, default=Path("eval/results/fidelity"))
    f.add_argument("--threads", type=int, default=int(env.get("CQA_THREADS") or 0) or os.cpu_count())
    f.add_argument("--cache-dir", type=Path, default=Path(env.get("CQA_CACHE") or Path.home() / ".cache" / "cqa"),
                   help="where the copies are made (default $CQA_CACHE or ~/.cache/cqa)")
    f.set_defaults(func=cmd_fidelity)

    v = sub.add_parser("validate", help="check pair or brief files; file:line: field: message errors")
    v.add_argument("files", nargs="+", type=Path)
    v.set_defaults(func=cmd_validate)

    ch = sub.add_parser("choose", help="the epoch to ship from a pair report, by the README's rule")
    ch.add_argument("report", type=Path, help="report.json of `python -m eval pairs` with adapters named epoch-N")
    ch.add_argument("--json", action="store_true", help="also print the choice as one JSON line")
    ch.set_defaults(func=cmd_choose)

    w = sub.add_parser("prefer-watch", help="preference tuning: training reward vs the grid's outside reader")
    w.add_argument("--grid", type=Path, required=True, help="report.json of a grid run with the new writers")
    w.add_argument("--run", nargs="+", required=True, metavar="NAME=RUN", help="grid writer name = prefer run folder or installed model folder")
    w.add_argument("--start", default="passage", help="the starting writer's name in the grid (default passage)")
    w.add_argument("--reader", default=None, help="grid reader (default: the one the grid's rule reads)")
    w.set_defaults(func=cmd_prefer_watch)
    return ap


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser(env).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if hasattr(args, "template"):      # the commands that run models
            args.settings = settings(args, argv)
        return args.func(args)
    except FormatError as e:
        for line in e.problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1
    except OSError as e:      # the file system said no (missing file, permissions, disk full): the user's to fix
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        print(f"error: {e.name} is not installed: {INSTALL.get(e.name, 'pip install ' + str(e.name))}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: what was scored so far is cached; run the same command to go on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
