"""Which weight type batches on this CPU? Copies of the embedded model, timed for multi-sequence decode steps.

    python bench/copies.py                        # ~5 min on 2 idle cores
    python bench/copies.py --types Q4_1,BF16 --seqs 1,2,4 --repeats 5

Groundwork for issue #20 (best of N in parallel, a lazy unconditional reader): a step that decodes one token
in each of n sequences costs, on a kernel that batches, about what one sequence costs; on the shipped Q4_1
it costs nearly n steps. For each copy (made from the packaged file as the app makes it, assistant/copies.py:
F32, F16 and BF16 dequantize Q4_1; Q8_0 requantizes it), with flash
attention off and on: steps per second at n = 1, 2, 4, 8 sequences, the cost of an n-sequence step in
1-sequence steps (1.0 = free batching, n = none), and a 512-token log-prob pass (logits at every token, as
the engine asks) in tokens per second. Every
copy uses the weight placement the engine would (extra buffer types: llama.choose_extra_bufts), so the
repacked kernels run where llama.cpp has them. Speed only: whether a copy's scores are faithful enough to
serve is a separate gate (issue #20, part 1).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import catalog, llama  # noqa: E402

TEXT = " ".join(["The keeper counted the gulls twice, and both times there was one too many."] * 40)
N_STEPS = 32
N_PASS = 512


def make_copy(src: Path, name: str, folder: Path) -> Path:
    from assistant import copies
    out = copies.make(src, name, folder)
    rec = copies.record(out)
    print(f"{name}: made in {rec['seconds']:.1f} s (gguf-py), {out.stat().st_size / 2**20:.0f} MiB")
    return out


def measure(path: Path, seqs: list[int], flash: bool, threads: int, repeats: int) -> dict:
    extra, _ = llama.choose_extra_bufts("auto", llama.system_info())
    weights = llama.Weights.load(path, 0, extra_bufts=extra)
    ctx = llama.Context(weights, n_cells=4096, n_seq=max(seqs), n_batch=512, n_threads=threads, flash_attn=flash)
    try:
        ids = weights.tokenize(TEXT.encode(), add_bos=False, special=False)
        prompt = ids[:32]

        def steps(n: int) -> float:
            ctx.clear()
            list(ctx.decode([(t, p, 0, p == len(prompt) - 1) for p, t in enumerate(prompt)]))
            for s in range(1, n):     # the prompt decoded once, its cells shared with the other sequences
                ctx.copy_sequence(0, s)
            t = time.perf_counter()
            for k in range(N_STEPS):
                tok = ids[32 + k]
                list(ctx.decode([(tok, len(prompt) + k, s, True) for s in range(n)]))
            return time.perf_counter() - t

        steps(1)
        out = {n: N_STEPS / statistics.median(steps(n) for _ in range(repeats)) for n in seqs}
        pass_ids = ids[:N_PASS]

        def logprob_pass():
            ctx.clear()
            list(ctx.decode([(t, p, 0, True) for p, t in enumerate(pass_ids)]))
        logprob_pass()
        out["pass"] = len(pass_ids) / statistics.median(_time(logprob_pass) for _ in range(repeats))
        return out
    finally:
        ctx.close()
        weights.close()


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--types", default="Q4_1,F32,F16,BF16,Q8_0", help="Q4_1 is the shipped file")
    p.add_argument("--seqs", default="1,2,4,8,16")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    seqs = [int(x) for x in a.seqs.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={a.threads}")
    print(f"llama.cpp system info: {llama.system_info()}")
    src = catalog.resolve().path
    folder = Path(tempfile.mkdtemp(prefix="cqa-copies-"))
    files = {}
    for name in a.types.split(","):
        files[name] = src if name == "Q4_1" else make_copy(src, name, folder)
    head = "  ".join(f"n={n}: steps/s (cost)" for n in seqs)
    print(f"{'copy':6s} {'FA':3s} {head}  log-prob pass tok/s")
    for name, path in files.items():
        if path is None:
            continue
        for flash in (False, True):
            r = measure(path, seqs, flash, a.threads, a.repeats)
            cells = "  ".join(f"n={n}: {r[n]:6.1f} ({r[seqs[0]] / r[n]:.2f})" for n in seqs)
            print(f"{name:6s} {int(flash):<3d} {cells}  {r['pass']:7.1f}", flush=True)


if __name__ == "__main__":
    main()
