"""What llama.cpp's extra weight buffer types cost or buy on this CPU: each model loaded with them on and off.

    python bench/placement.py                    # both bases, ~2 min on 2 idle cores
    python bench/placement.py --models smollm2-135m --repeats 5

For each model: (1) single-sequence decode steps (generation), (2) two-sequence steps (a twin-stream
draft), in steps per second, (3) a 512-token log-prob pass (scoring pasted text), in tokens per second, with extra buffer types
on and off, both loaded in this process and timed in turn; the ratio off/on is what turning them off costs
(< 1) or buys (> 1). It prints llama.cpp's system info line first: what `choose_extra_bufts` decided
from, and with what. On a CPU with AMX the "on" rows may crash the process (llama.cpp issue 20824): run
each setting in its own process there (--only on / --only off).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import llama  # noqa: E402
from assistant.engine import Engine  # noqa: E402

TEXT = " ".join(["The keeper counted the gulls twice, and both times there was one too many."] * 40)
N_STEPS = 64          # decode steps timed per repeat
N_PASS = 512          # tokens in the log-prob pass


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def jobs(eng: Engine) -> dict[str, tuple[int, object]]:
    """What to time on one engine: name -> (units done per call, the call)."""
    ids = eng.tokenize_text(TEXT)
    prompt = ids[:32]

    def steps(n_seq: int):
        with eng.hold() as ctx:
            for s in range(n_seq):
                list(ctx.decode([(t, p, s, p == len(prompt) - 1) for p, t in enumerate(prompt)]))
            for k in range(N_STEPS):
                tok = ids[32 + k]
                list(ctx.decode([(tok, len(prompt) + k, s, True) for s in range(n_seq)]))

    pass_ids = ids[:N_PASS]
    return {"decode steps/s, 1 sequence": (N_STEPS, lambda: steps(1)),
            "decode steps/s, 2 sequences": (N_STEPS, lambda: steps(2)),
            f"log-prob pass tok/s, {len(pass_ids)} tok": (len(pass_ids),
                                                         lambda: eng.token_logprobs_ids("Text:", pass_ids))}


def rates(name: str, settings: list[bool], threads: int, repeats: int) -> dict[bool, dict[str, float]]:
    """Both settings loaded side by side (two small copies), timed in turn repeat by repeat, so background
    load and warm-up hit both alike; medians."""
    engines = {e: Engine.load(name, n_threads=threads, extra_bufts=e) for e in settings}
    try:
        work = {e: jobs(eng) for e, eng in engines.items()}
        for e in settings:            # warm up
            for _, fn in work[e].values():
                fn()
        times = {e: {k: [] for k in work[e]} for e in settings}
        for _ in range(repeats):
            for k in work[settings[0]]:
                for e in settings:
                    times[e][k].append(_time(work[e][k][1]))
        return {e: {k: work[e][k][0] / statistics.median(v) for k, v in times[e].items()} for e in settings}
    finally:
        for eng in engines.values():
            eng.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="smollm2-135m,gemma3-270m", help="catalog names or .gguf paths, comma-separated")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("on", "off"), default=None, help="one setting (a CPU where 'on' may crash)")
    a = p.parse_args()
    info = llama.system_info()
    chosen, why = llama.choose_extra_bufts("auto", info)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={a.threads}")
    print(f"llama.cpp system info: {info}")
    print(f"auto chooses extra buffer types {why}")
    settings = [a.only == "on"] if a.only else [True, False]
    for name in a.models.split(","):
        got = rates(name, settings, a.threads, a.repeats)
        for what in got[settings[0]]:
            cells = "  ".join(f"{'on' if e else 'off'} {got[e][what]:7.1f}" for e in settings)
            ratio = f"  off/on {got[False][what] / got[True][what]:.3f}" if len(settings) == 2 else ""
            print(f"{name:14s} {what:34s} {cells}{ratio}")


if __name__ == "__main__":
    main()
