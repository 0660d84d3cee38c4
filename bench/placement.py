"""What llama.cpp's extra weight buffer types cost or buy on this CPU: each model loaded with them on and off.

    python bench/placement.py                    # both bases, ~2 min on 2 idle cores
    python bench/placement.py --models smollm2-135m --repeats 5

For each model: (1) a single-sequence decode step (generation), (2) a two-sequence step (a twin-stream
draft), (3) a 512-token log-prob pass (scoring pasted text), in tokens per second, with extra buffer types
on and off, loaded one after the other in this process; the ratio off/on is what turning them off costs
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


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def rates(name: str, extra: bool, threads: int, repeats: int) -> dict[str, float]:
    eng = Engine.load(name, n_threads=threads, extra_bufts=extra)
    try:
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
        steps(1)   # warm up
        out = {"decode step, 1 sequence": N_STEPS / _median(lambda: steps(1), repeats),
               "decode step, 2 sequences": N_STEPS / _median(lambda: steps(2), repeats)}
        eng.token_logprobs_ids("Text:", pass_ids)
        out[f"log-prob pass, {len(pass_ids)} tokens"] = len(pass_ids) / _median(
            lambda: eng.token_logprobs_ids("Text:", pass_ids), repeats)
        return out
    finally:
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
        got = {extra: rates(name, extra, a.threads, a.repeats) for extra in settings}
        for what in got[settings[0]]:
            cells = "  ".join(f"{'on' if e else 'off'} {got[e][what]:7.1f} tok/s" for e in settings)
            ratio = f"  off/on {got[False][what] / got[True][what]:.3f}" if len(settings) == 2 else ""
            print(f"{name:14s} {what:28s} {cells}{ratio}")


if __name__ == "__main__":
    main()
