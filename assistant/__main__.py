"""Command line for scripts.

    python -m assistant score --brief BRIEF.json --text TEXT.txt [--model M] [--adapter A.gguf] --json
    python -m assistant draft --brief BRIEF.json [--adapter models/cqa/adapter.gguf --strength 1] --guidance 1.5 --json
    python -m assistant models
    python -m assistant alternatives --brief BRIEF.json --text TEXT.txt --position 5 [--sort i] --json
    python -m assistant rewrite --brief BRIEF.json --text TEXT.txt --position 5 --alternative 2 [--seed 1] --json
    python -m assistant weak --brief BRIEF.json --text TEXT.txt --json
    python -m assistant suggest --brief BRIEF.json --text TEXT.txt [--sentence 1] [--n 3] --json

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
from .errors import BadInput, UserError


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


def _revise_engine(args):
    """The engine, the brief, the text and its score, for the revision verbs."""
    from . import writer
    from .engine import Engine

    brief, text = _brief(args), _read_text(args.text, "text")
    eng = Engine.load(args.model, lora_path=args.adapter, strength=args.strength, n_threads=args.threads,
                      n_ctx=args.n_ctx, extra_bufts=_extra_bufts(args), cache_dir=args.cache_dir)
    return eng, brief, text, writer.score(eng, brief, text, args.template)


def cmd_alternatives(args) -> int:
    from . import revise
    eng, _, _, result = _revise_engine(args)
    rows = revise.alternatives(eng, result, args.position, sort=args.sort)
    if args.json:
        print(json.dumps({"position": args.position, "alternatives": [a.to_json() for a in rows]},
                         ensure_ascii=False, indent=1))
        return 0
    print(f"token {args.position}: {result.pieces[args.position]!r}; alternatives by {args.sort}:")
    for k, a in enumerate(rows, 1):
        i = "?" if a.i is None else f"{a.i:+.2f}"
        p0 = "?" if a.p0 is None else f"{100 * a.p0:5.1f}"
        print(f"{k:3d}. {a.text!r:18s} p(x|Y) {100 * a.p:5.1f} %  p(x) {p0} %  i {i} bits  {a.words}"
              + ("  copies the brief" if a.copies else "") + ("  (written)" if a.written else "") + f"  [token {a.token}]")
    return 0


def cmd_rewrite(args) -> int:
    from . import revise
    from .sampler import Sampler
    eng, brief, text, result = _revise_engine(args)
    if args.token is None:
        rows = revise.alternatives(eng, result, args.position)
        if not 1 <= args.alternative <= len(rows):
            raise BadInput(f"--alternative {args.alternative} must be from 1 to {len(rows)} (the panel's rows, by p)")
        args.token = rows[args.alternative - 1].token
    sampler = Sampler(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)
    last = None
    for last in revise.rewrite(eng, brief, sampler, args.template, eng.tokenize_text(text), args.position,
                               args.token, guidance=args.guidance):
        continue
    score = last.result.to_json() if last.result else None
    if args.json:
        print(json.dumps({"text": last.text, "notice": last.notice, "position": args.position, "token": args.token,
                          "score": score}, ensure_ascii=False, indent=1))
    else:
        print(last.text)
        if score:
            print(f"\nI(X;Y) = {score['I_per_token']:.3f} bits/token over {score['n_tokens']} tokens", file=sys.stderr)
    return 0


def cmd_weak(args) -> int:
    from . import weakspots
    _, _, _, result = _revise_engine(args)
    found = weakspots.from_scored(result)
    if args.json:
        print(json.dumps({"sentences": [s.to_json() for s in found], "weak": [s.index for s in weakspots.weak(found)]},
                         ensure_ascii=False, indent=1))
        return 0
    for s in weakspots.weak(found) or []:
        print(f"[{s.index}] {s.text}\n    {s.reason}")
    if not weakspots.weak(found):
        print("no weak sentence: none falls below the text's I per token in its lowest third")
    return 0


def cmd_suggest(args) -> int:
    from . import revise, weakspots
    from .sampler import Sampler
    eng, brief, text, result = _revise_engine(args)
    found = weakspots.from_scored(result)
    weak = weakspots.weak(found)
    k = args.sentence if args.sentence is not None else (weak[0].index if weak else None)
    if k is None:
        raise BadInput("no weak sentence to rewrite: name one with --sentence K (from 0)")
    if not 0 <= k < len(found):
        raise BadInput(f"--sentence {k} is outside the text: it has {len(found)} sentences (0 to {len(found) - 1})")
    s = found[k]
    out = revise.suggest(eng, brief, text, s.start, s.end, Sampler(seed=args.seed), args.template, args.n,
                         before=result.to_json())
    if args.json:
        print(json.dumps({"sentence": s.to_json(), "suggestions": [x.to_json() for x in out]}, ensure_ascii=False,
                         indent=1))
        return 0
    print(f"[{k}] {s.text}" + (f"\n    {s.reason}" if s.reason else ""))
    for x in out:
        print(f"  {x.delta_I_per_token:+.3f} bits/token ({x.delta_I_uncopied_per_token:+.3f} uncopied)"
              f"{'  restates the brief' if x.restates else ''}: {x.sentence}")
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


def _revise_parsers(sub, engine_flags) -> None:
    """alternatives, rewrite, weak, suggest: the revision tools on a pasted text."""
    text = argparse.ArgumentParser(add_help=False, parents=[engine_flags])
    text.add_argument("--brief", required=True, help="BRIEF.json")
    text.add_argument("--text", required=True, help="TEXT.txt, or - for standard input")
    text.add_argument("--adapter", default=None, help="a GGUF LoRA adapter (CQA: models/cqa/adapter.gguf)")
    text.add_argument("--strength", type=float, default=1.0, help="the adapter's scale, 0-2 (default 1)")
    text.add_argument("--template", default="chat", choices=["chat", "plain"], help="prompt format")
    text.add_argument("--json", action="store_true", help="print the result as JSON")
    a = sub.add_parser("alternatives", help="what else could stand at a token, with p(x|Y), p(x), i", parents=[text])
    a.add_argument("--position", type=int, required=True, help="the token, from 0 (see `score --json`'s tokens)")
    a.add_argument("--sort", default="p", choices=["p", "i"], help="by probability under the brief, or by i")
    a.set_defaults(fn=cmd_alternatives)
    r = sub.add_parser("rewrite", help="write the text again from a token, with an alternative there", parents=[text])
    r.add_argument("--position", type=int, required=True, help="the token, from 0")
    r.add_argument("--alternative", type=int, default=1, help="row K of `alternatives` (by p; default 1)")
    r.add_argument("--token", type=int, default=None, help="or a token id (the `token` of an alternative)")
    r.add_argument("--guidance", type=float, default=0.0, help="brief guidance alpha, 0-3")
    for flag, typ, default in (("--temperature", float, 0.8), ("--seed", int, 0), ("--max-tokens", int, 200)):
        r.add_argument(flag, type=typ, default=default, help=f"sampler setting (default {default})")
    r.set_defaults(fn=cmd_rewrite)
    w = sub.add_parser("weak", help="the sentences the score flags, with the kind and a reason", parents=[text])
    w.set_defaults(fn=cmd_weak)
    g = sub.add_parser("suggest", help="rewrites of a sentence, scored in place", parents=[text])
    g.add_argument("--sentence", type=int, default=None, help="sentence K from 0 (default: the weakest)")
    g.add_argument("--n", type=int, default=3, help="suggestions (1-6)")
    g.add_argument("--seed", type=int, default=0, help="first seed")
    g.set_defaults(fn=cmd_suggest)


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
    _revise_parsers(sub, engine_flags)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
