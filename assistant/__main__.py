"""Command line for scripts.

    python -m assistant score --brief BRIEF.json --text TEXT.txt [--model M] [--adapter A.gguf] --json
    python -m assistant models

BRIEF.json: {"task", "intent", "audience", "world", "text_so_far"} (all strings, any may be missing).
Errors print one line to stderr and exit 1; never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import catalog
from .brief import Brief, BriefError


def _read_text(path: str, what: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"error: cannot read {what} {path}: {e.strerror}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystemExit(f"error: {what} {path} is not valid UTF-8 (byte {e.start}): re-save it as UTF-8")


def cmd_score(args) -> int:
    from .engine import Engine
    from .scoring import score_text

    brief = Brief()
    if args.brief:
        try:
            brief = Brief.from_dict(json.loads(_read_text(args.brief, "brief")))
        except json.JSONDecodeError as e:
            raise SystemExit(f"error: {args.brief}:{e.lineno}: not valid JSON: {e.msg}")
    text = _read_text(args.text, "text")
    eng = Engine.load(args.model, lora_path=args.adapter, n_threads=args.threads, n_ctx=args.n_ctx)
    result = score_text(eng, brief, text, template=args.template)
    out = result.to_json()
    out["model"] = eng.info()
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        s = result.score
        print(f"I(X;Y) = {s.I:.1f} bits ({s.I_per_token:.3f} bits/token) over {s.n_tokens} tokens")
        print(f"H(X)   = {s.H_X:.1f} bits ({s.H_X_per_token:.3f} bits/token)")
        print(f"H(X|Y) = {s.H_X_given_Y:.1f} bits ({s.H_X_given_Y_per_token:.3f} bits/token)")
        print(f"I without copied spans = {s.I_uncopied:.1f} bits ({s.n_copied} tokens copied from the brief)")
    return 0


def cmd_models(args) -> int:
    for name, e in catalog.ENTRIES.items():
        try:
            where = str(catalog.resolve(name).path)
        except catalog.ModelUnavailable as err:
            where = f"not available: {err}"
        print(f"{name:14s} {e.help} [{e.license}]\n{'':14s} {where}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="calibrated surprise of a text under a brief")
    s.add_argument("--brief", help="BRIEF.json (omit for an empty brief)")
    s.add_argument("--text", required=True, help="TEXT.txt, or - for standard input")
    s.add_argument("--model", default=None, help=f"catalog name, .gguf path or owner/repo:file.gguf "
                                                 f"(default {catalog.DEFAULT_MODEL})")
    s.add_argument("--adapter", default=None, help="a GGUF LoRA adapter, e.g. models/cqa/adapter.gguf")
    s.add_argument("--template", default="chat", choices=["chat", "plain"], help="prompt format")
    s.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    s.add_argument("--n-ctx", type=int, default=2048, help="context window, tokens")
    s.add_argument("--json", action="store_true", help="print the full result as JSON")
    s.set_defaults(fn=cmd_score)
    m = sub.add_parser("models", help="list the catalog")
    m.set_defaults(fn=cmd_models)
    args = p.parse_args(argv)
    from .engine import EngineError
    from .sampler import SamplerError
    try:
        return args.fn(args)
    except (catalog.UnknownModel, catalog.ModelUnavailable, EngineError, BriefError, SamplerError,
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
