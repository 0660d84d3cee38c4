"""Command line for scripts.

    python -m assistant score --brief BRIEF.json --text TEXT.txt [--model M] [--adapter A.gguf] --json
    python -m assistant draft --brief BRIEF.json [--adapter models/cqa/adapter.gguf --strength 1] --guidance 1.5 --json
    python -m assistant models

BRIEF.json: {"task", "intent", "audience", "world", "text_so_far"} (all strings, any may be missing).
A user's error (assistant.errors.UserError) prints one line to stderr and exits 1; anything else is a bug
and keeps its traceback. Environment: CQA_MODEL, CQA_THREADS, CQA_CACHE, CQA_EXTRA_BUFTS give the defaults
of --model, --threads, the cache folder and --extra-bufts (read here, nowhere in the core).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import catalog, llama
from .brief import Brief
from .errors import UserError


def _read_text(path: str, what: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"error: cannot read {what} {path}: {e.strerror}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystemExit(f"error: {what} {path} is not valid UTF-8 (byte {e.start}): re-save it as UTF-8")


def _brief(args) -> Brief:
    if not args.brief:
        return Brief()
    try:
        return Brief.from_dict(json.loads(_read_text(args.brief, "brief")))
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: {args.brief}:{e.lineno}: not valid JSON: {e.msg}")


def cmd_draft(args) -> int:
    from . import guidance, writer
    from .engine import Engine
    from .sampler import Sampler, SamplerError

    brief = _brief(args)
    problems = guidance.check(args.guidance)
    if not 0 <= args.strength <= 2:
        problems.append(f"--strength {args.strength} must be between 0 and 2")
    try:
        sampler = Sampler(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                          repeat_penalty=args.repeat_penalty, seed=args.seed, max_tokens=args.max_tokens,
                          stop=tuple(args.stop or ()))
    except SamplerError as e:
        problems.insert(0, str(e))
    if problems:
        raise SamplerError("; ".join(problems))
    eng = Engine.load(args.model, lora_path=args.adapter, strength=args.strength, n_threads=args.threads,
                      n_ctx=args.n_ctx, extra_bufts=_extra_bufts(args), cache_dir=args.cache_dir)
    from . import ranking
    end = None
    for end in writer.best_of(eng, brief, sampler, args.n, args.template, guidance=args.guidance,
                              notes=not args.no_notes):
        continue

    def answer(u):
        score = u.result.to_json() if u.result else None
        return {"draft": u.text, "notes": u.notes, "notice": u.notice, "stop_reason": u.stop_reason, "seed": u.seed,
                "score": score, "rank_score": ranking.rank_score(score, sampler.max_tokens) if score else None}
    out = {**answer(end), "guidance": args.guidance, "cqa_strength": args.strength if args.adapter else None,
           "sampler": sampler.to_dict(), "model": eng.info(), "ranked": [answer(u) for u in end.ranked]}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        print(end.text)
        if end.notice:
            print(f"\n[{end.notice}]", file=sys.stderr)
        if end.result:
            s = end.result.score
            print(f"\nI(X;Y) = {s.I_per_token:.3f} bits/token over {s.n_tokens} tokens "
                  f"(without copied spans {s.I_uncopied_per_token:.3f}); guidance {args.guidance:g}", file=sys.stderr)
    return 0


def cmd_score(args) -> int:
    from .engine import Engine
    from .scoring import score_text

    brief = _brief(args)
    text = _read_text(args.text, "text")
    eng = Engine.load(args.model, lora_path=args.adapter, n_threads=args.threads, n_ctx=args.n_ctx,
                      extra_bufts=_extra_bufts(args), cache_dir=args.cache_dir)
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


def _extra_bufts(args) -> bool:
    return llama.choose_extra_bufts(args.extra_bufts, llama.system_info())[0]


def cmd_models(args) -> int:
    for name, e in catalog.ENTRIES.items():
        try:
            where = str(catalog.resolve(name, args.cache_dir).path)
        except catalog.ModelUnavailable as err:
            where = f"not available: {err}"
        print(f"{name:14s} {e.help} [{e.license}]\n{'':14s} {where}")
    return 0


def main(argv=None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.splitlines()[0])
    p.set_defaults(cache_dir=Path(env("CQA_CACHE") or catalog.DEFAULT_CACHE))
    sub = p.add_subparsers(dest="cmd", required=True)
    engine_flags = argparse.ArgumentParser(add_help=False)
    engine_flags.add_argument("--model", default=env("CQA_MODEL"), help=f"catalog name, .gguf path or "
                              f"owner/repo:file.gguf (default {catalog.DEFAULT_MODEL})")
    engine_flags.add_argument("--threads", type=int, default=int(env("CQA_THREADS") or 0) or None,
                              help="CPU threads (default: all cores)")
    engine_flags.add_argument("--n-ctx", type=int, default=2048, help="context window, tokens")
    engine_flags.add_argument("--extra-bufts", default=env("CQA_EXTRA_BUFTS", "auto"), choices=llama.EXTRA_BUFTS_MODES,
                              help="llama.cpp's extra weight buffer types (auto: off on CPUs with AMX)")
    s = sub.add_parser("score", help="calibrated surprise of a text under a brief", parents=[engine_flags])
    s.add_argument("--brief", help="BRIEF.json (omit for an empty brief)")
    s.add_argument("--text", required=True, help="TEXT.txt, or - for standard input")
    s.add_argument("--adapter", default=None, help="a GGUF LoRA adapter, e.g. models/cqa/adapter.gguf")
    s.add_argument("--template", default="chat", choices=["chat", "plain"], help="prompt format")
    s.add_argument("--json", action="store_true", help="print the full result as JSON")
    s.set_defaults(fn=cmd_score)
    d = sub.add_parser("draft", help="write a draft for a brief, with its score", parents=[engine_flags])
    d.add_argument("--brief", required=True, help="BRIEF.json")
    d.add_argument("--adapter", default=None, help="a GGUF LoRA adapter (CQA: models/cqa/adapter.gguf)")
    d.add_argument("--strength", type=float, default=1.0, help="the adapter's scale, 0-2 (default 1)")
    d.add_argument("--guidance", type=float, default=0.0, help="brief guidance alpha, 0-3 (default 0: plain sampling)")
    d.add_argument("--no-notes", action="store_true", help="a CQA model writes the passage at once, no notes first")
    d.add_argument("--n", type=int, default=1, help="best of N drafts (1-8; seeds seed..seed+N-1), ranked")
    d.add_argument("--template", default="chat", choices=["chat", "plain"], help="prompt format")
    for flag, typ, default in (("--temperature", float, 0.8), ("--top-p", float, 0.95), ("--top-k", int, 40),
                               ("--min-p", float, 0.05), ("--repeat-penalty", float, 1.1), ("--seed", int, 0),
                               ("--max-tokens", int, 200)):
        d.add_argument(flag, type=typ, default=default, help=f"sampler setting (default {default})")
    d.add_argument("--stop", action="append", help="stop before this string (repeatable)")
    d.add_argument("--json", action="store_true", help="print the draft and its score as JSON")
    d.set_defaults(fn=cmd_draft)
    m = sub.add_parser("models", help="list the catalog")
    m.set_defaults(fn=cmd_models)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
