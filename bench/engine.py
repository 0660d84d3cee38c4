"""Benchmark the engine on the embedded model; every ratio is measured in this one run.

    python bench/engine.py                       # parts a-d, ~5 min on 2 idle cores
    python bench/engine.py --parts a,b --repeats 5
    python bench/engine.py --parts e             # the quantization x batch x flash-attention grid

(a) twin-stream generation (the draft and its unconditional reader in lockstep) vs single-stream generation,
    same prompt, seed and sampler (target >= 0.8); and single-stream through our engine vs a bare
    llama_cpp.Llama (reported)
(b) the score of a finished draft (from its twin stream) as a share of its generation time (target <= 5%),
    beside what the extra unconditional pass of the one-stream engine cost
(c) scoring pasted text, both passes: tokens of text per second vs transformers fp32 on the same text
    (target >= 1.5x)
(d) memory of the app process after a draft from each model: PSS and peak RSS, base + both tuned models vs the base alone
    (target <= 1.15x PSS)
(e) the log-prob pass over llama.cpp setups (requantized copies, batch sizes, flash attention)
(f) may a requantized copy be served instead of the shipped file? Per-text I correlation and per-token mean
    |difference| (bits) against the shipped Q4_1 on 20 pair texts; the gate: r >= 0.99 and <= 0.05 bits
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import catalog  # noqa: E402
from assistant.brief import Brief  # noqa: E402
from assistant.engine import Engine  # noqa: E402
from assistant.pool import Pool  # noqa: E402
from assistant.sampler import Sampler  # noqa: E402
from assistant.scoring import from_logprobs, prompts_for, score_text  # noqa: E402

BRIEF = Brief(task="Write the opening of a short story.", intent="quiet dread that the reader feels before the "
              "narrator does", audience="adult readers of literary fiction",
              world="A lighthouse on a treeless island; the keeper, Ilse, has never learned to swim.")
N_GEN = 200
TEXT = " ".join(["The keeper counted the gulls twice, and both times there was one too many."] * 14)


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def part_a_b(eng: Engine, repeats: int) -> None:
    prompts = prompts_for(eng, BRIEF)
    s = Sampler(seed=11, max_tokens=N_GEN, temperature=0.8)
    runs = {}

    def twin():
        runs["twin"] = eng.complete(prompts.conditional, s, prompts.unconditional)

    def single():
        runs["single"] = eng.complete(prompts.conditional, s)

    twin(); single()  # warm up
    t_twin, t_single = [], []
    for _ in range(repeats):  # interleaved, so background load hits both alike
        t_twin.append(_median_time(twin, 1))
        t_single.append(_median_time(single, 1))
    n_t, n_s = len(runs["twin"].ids), len(runs["single"].ids)
    tt, ts = statistics.median(t_twin), statistics.median(t_single)
    print(f"(a) twin-stream generation {n_t / tt:.1f} tok/s vs single-stream {n_s / ts:.1f} tok/s "
          f"({n_t} and {n_s} tokens, prompt decode included): ratio {(n_t / tt) / (n_s / ts):.3f} (target >= 0.8)")
    _bare(eng, prompts, s, n_s / ts, repeats)
    d = runs["twin"]
    t_final = _median_time(lambda: from_logprobs(eng, prompts, d.ids, d.logprobs, d.logprobs0), repeats)
    t_extra = _median_time(lambda: score_text(eng, BRIEF, d.text, ids=d.ids), repeats)
    print(f"(b) the score of the finished {n_t}-token draft: {t_final * 1000:.1f} ms = {100 * t_final / tt:.2f}% of "
          f"its generation time {tt:.2f} s (target <= 5%); a separate scoring pass of the same tokens: "
          f"{t_extra * 1000:.0f} ms = {100 * t_extra / tt:.1f}%")


def _bare(eng: Engine, prompts, s: Sampler, ours_rate: float, repeats: int) -> None:
    """The loop a user of llama_cpp.Llama would write (generate + detokenize), on a second copy of the model."""
    from bench.bare import bare_llama
    llm = bare_llama(eng.model.path, extra_bufts=eng.extra_bufts, n_ctx=eng.n_ctx, n_threads=eng.n_threads,
                     n_threads_batch=eng.n_threads, verbose=False)   # weights placed as ours are
    ptoks = eng.tokenize_prompt(prompts.conditional)
    count = {}

    def bare():
        llm.set_seed(s.seed)
        llm.reset()   # a fresh prompt decode, as ours does
        n = 0
        for tok in llm.generate(ptoks, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, temp=s.temperature,
                                repeat_penalty=s.repeat_penalty, reset=True):
            if llm.token_eos() == tok:
                break
            llm.detokenize([tok])
            n += 1
            if n >= N_GEN:
                break
        count["n"] = n
    bare()
    t = _median_time(bare, repeats)
    llm.close()
    rate = count["n"] / t
    print(f"(a) single-stream through our engine {ours_rate:.1f} tok/s vs a bare llama_cpp.Llama {rate:.1f} tok/s: "
          f"ratio {ours_rate / rate:.3f}")


def part_c(eng: Engine, repeats: int, threads: int) -> None:
    prompts = prompts_for(eng, BRIEF)
    ids = eng.tokenize_text(TEXT)[:N_GEN]
    pair = lambda: eng.token_logprobs_pair(prompts.conditional, prompts.unconditional, ids)  # noqa: E731
    two = lambda: (eng.token_logprobs_ids(prompts.conditional, ids),  # noqa: E731
                   eng.token_logprobs_ids(prompts.unconditional, ids))
    pair(); two()
    t_pair, t_two = _median_time(pair, repeats), _median_time(two, repeats)
    tr = _transformers_rate(eng, ids, repeats, threads)
    rate = len(ids) / t_pair
    print(f"(c) scoring {len(ids)} tokens of pasted text, both passes: /score's pair of passes "
          f"{rate:.1f} tok/s, two separate calls {len(ids) / t_two:.1f} tok/s, transformers fp32 (two forwards) "
          f"{tr:.1f} tok/s: ratio {rate / tr:.2f}x (target >= 1.5x) [{eng.model.path.name}]")


def _pass_rate(eng: Engine, text_ids, repeats) -> float:
    prompt = prompts_for(eng, BRIEF).unconditional
    eng.token_logprobs_ids(prompt, text_ids)
    t = _median_time(lambda: eng.token_logprobs_ids(prompt, text_ids), repeats)
    return len(text_ids) / t


def part_e(repeats: int, threads: int) -> None:
    base = Engine.load(n_threads=threads)
    ids = base.tokenize_text(TEXT)[:N_GEN]
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="cqa-bench-"))
    quants = {"Q4_1 (shipped)": base.model.path}
    import llama_cpp
    for name, ftype in (("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0),
                        ("F16", llama_cpp.LLAMA_FTYPE_MOSTLY_F16)):
        out = tmp / f"{name}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = threads
        if llama_cpp.llama_model_quantize(str(base.model.path).encode(), str(out).encode(), params) == 0:
            quants[name] = out
    for qname, path in quants.items():
        for n_batch in (512, 256, 128):
            for fa in (False, True):
                eng = Engine.load(str(path), n_threads=threads, n_batch=n_batch, flash_attn=fa)
                key = f"{qname:15s} n_batch={n_batch:3d} flash_attn={int(fa)}"
                results[key] = _pass_rate(eng, ids, repeats)
                eng.close()
    tr = _transformers_rate(base, ids, repeats, threads, passes=1)
    ship = results["Q4_1 (shipped)  n_batch=512 flash_attn=0"]
    for k, v in sorted(results.items(), key=lambda kv: -kv[1]):
        print(f"(e) {k}: {v:7.1f} tok/s  ratio vs transformers fp32 {v / tr:.2f}")
    best = max(results, key=results.get)
    print(f"(e) transformers fp32 forward: {tr:.1f} tok/s; default setup (Q4_1, 512, no FA) "
          f"{ship:.1f} tok/s = {ship / tr:.2f}x; fastest: {best.strip()} {results[best]:.1f} tok/s = "
          f"{results[best] / tr:.2f}x")


def part_f(threads: int) -> None:
    import numpy as np
    import llama_cpp

    from eval.pairs import load_pairs
    from eval.pairs import default_pairs_files
    texts = [(p.context, t) for p in load_pairs(default_pairs_files())[:10] for t in (p.high, p.degraded)]
    base = Engine.load(n_threads=threads)
    tmp = Path(tempfile.mkdtemp(prefix="cqa-bench-"))
    for name, ftype in (("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)):
        out = tmp / f"{name}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize, params.nthread = ftype, True, threads
        if llama_cpp.llama_model_quantize(str(base.model.path).encode(), str(out).encode(), params) != 0:
            continue
        other = Engine.load(str(out), n_threads=threads)
        ia, ib, d_sy, d_s0 = [], [], [], []
        for context, t in texts:
            a = score_text(base, None, t, context=context).score
            b = score_text(other, None, t, context=context).score
            ia.append(a.I_per_token)
            ib.append(b.I_per_token)
            d_sy.append(np.mean(np.abs(a.sY - b.sY)))
            d_s0.append(np.mean(np.abs(a.s0 - b.s0)))
        other.close()
        r = float(np.corrcoef(ia, ib)[0, 1])
        ok = r >= 0.99 and max(np.mean(d_sy), np.mean(d_s0)) <= 0.05
        print(f"(f) {name} copy vs shipped Q4_1, {len(texts)} texts: r of per-text I {r:.4f}, per-token mean |diff| "
              f"sY {np.mean(d_sy):.3f} s0 {np.mean(d_s0):.3f} bits: {'passes' if ok else 'fails'} the gate "
              "(r >= 0.99, <= 0.05 bits)")
    base.close()


def _transformers_rate(base: Engine, ids, repeats, threads, passes: int = 2) -> float:
    """Text tokens per second of transformers fp32 scoring `ids` after the unconditional (and, with passes=2,
    the conditional) prompt: one forward each, log-softmax at the text tokens."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(threads)
    path = base.model.path
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    prompts = prompts_for(base, BRIEF)
    inputs = []
    for prompt in (prompts.unconditional, prompts.conditional)[:passes]:
        p = base.tokenize_prompt(prompt)
        inputs.append((len(p), torch.tensor([p + list(ids)])))

    def fwd():
        with torch.inference_mode():
            for n_p, x in inputs:
                logits = model(x).logits[0, n_p - 1:-1].double()
                torch.log_softmax(logits, -1).gather(1, torch.tensor(ids)[:, None])
    fwd()
    return len(ids) / _median_time(fwd, repeats)


def _memory(pid: int) -> tuple[float, float]:
    """(PSS, peak RSS) of a process, MiB: PSS shares mapped pages (the mmapped model) among their users."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return pss / 1024, hwm / 1024


def _app_memory(variants: list[str], threads: int) -> tuple[float, float]:
    import socket
    from gradio_client import Client
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = [] if len(variants) > 1 else ["--no-cqa"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--threads", str(threads),
                             *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1)
        for v in variants:
            client.predict(task="Write a haiku about rain.", model=v, max_tokens=60, api_name="/draft")
        return _memory(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def part_d(threads: int) -> None:
    model_mb = catalog.resolve().path.stat().st_size / 2**20
    pss_b, hwm_b = _app_memory(["base"], threads)
    line = f"(d) app process, base alone after a draft: PSS {pss_b:.0f} MiB, peak RSS {hwm_b:.0f} MiB"
    pool = Pool()
    variants = pool.variants()       # the base and every shipped tuned model (CQA, CQA-passage)
    if len(variants) > 1:
        pss, hwm = _app_memory(variants, threads)
        line += (f"; {' + '.join(variants)} after a draft from each: PSS {pss:.0f} MiB, peak RSS {hwm:.0f} MiB; "
                 f"ratio {pss / pss_b:.3f} PSS, {hwm / hwm_b:.3f} peak RSS (target <= 1.15 PSS)")
    sizes = ", ".join(f"{v} {pool.adapter_for(v).stat().st_size / 2**20:.1f} MiB" for v in variants[1:])
    print(line + f" [model file {model_mb:.0f} MiB, mmapped; adapters: {sizes or 'none'}]")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="a,b,c,d", help="any of a,b,c,d,e,f")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    parts = set(a.parts.split(","))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={a.threads}, "
          f"python {platform.python_version()}")
    if parts & {"a", "b", "c"}:
        eng = Engine.load(n_threads=a.threads)
        if parts & {"a", "b"}:
            part_a_b(eng, a.repeats)
        if "c" in parts:
            part_c(eng, a.repeats, a.threads)
        eng.close()
    if "d" in parts:
        part_d(a.threads)
    if "e" in parts:
        part_e(a.repeats, a.threads)
    if "f" in parts:
        part_f(a.threads)


if __name__ == "__main__":
    main()
