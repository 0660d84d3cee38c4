"""Benchmark the engine on the embedded model; every ratio is measured in this one run.

    python bench/engine.py                       # all parts, ~5 min on 2 cores
    python bench/engine.py --parts a,b --repeats 5

(a) generation tok/s through our engine vs a bare llama_cpp.Llama, same settings (target >= 0.95)
(b) time to score a fresh 200-token draft as a share of its generation time (target <= 50%)
(c) log-prob pass tok/s for several llama.cpp setups vs a transformers fp32 forward pass on the
    same (dequantized) weights
(d) peak resident memory of the app process with the model loaded, after one draft
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
from assistant.pool import CQA_ADAPTER  # noqa: E402
from assistant.sampler import Sampler  # noqa: E402
from assistant.scoring import prompts_for, score_generated  # noqa: E402

BRIEF = Brief(task="Write the opening of a short story.", intent="quiet dread that the reader feels before the "
              "narrator does", audience="adult readers of literary fiction",
              world="A lighthouse on a treeless island; the keeper, Ilse, has never learned to swim.")
N_GEN = 200


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def part_a_b(eng: Engine, repeats: int) -> None:
    prompt = prompts_for(eng, BRIEF).conditional
    s = Sampler(seed=11, max_tokens=N_GEN, temperature=0.8)
    llm = eng.llama
    ptoks = eng.tokenize_prompt(prompt)
    draft = {}

    def ours():
        draft["d"] = eng.complete(prompt, s)

    def bare():  # the same loop a user of llama_cpp would write: generate + detokenize
        llm.set_seed(s.seed)
        llm.reset()  # a fresh prompt decode, as ours does (a reused prefix changes the draft; see Engine._generate)
        out, n = b"", 0
        for tok in llm.generate(ptoks, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, temp=s.temperature,
                                repeat_penalty=s.repeat_penalty, reset=True):
            if llm._model.token_eos() == tok:
                break
            out += llm.detokenize([tok])
            n += 1
            if n >= N_GEN:
                break

    ours(); bare()  # warm up
    t_ours, t_bare = [], []
    for _ in range(repeats):  # interleaved, so background load hits both alike
        t_ours.append(_median_time(ours, 1))
        t_bare.append(_median_time(bare, 1))
    n = len(draft["d"].ids)
    to, tb = statistics.median(t_ours), statistics.median(t_bare)
    print(f"(a) generation, {n} tokens: ours {n / to:.1f} tok/s, bare llama_cpp {n / tb:.1f} tok/s, "
          f"ratio {tb / to:.3f} (target >= 0.95)")
    d = draft["d"]
    t_score = _median_time(lambda: score_generated(eng, BRIEF, d.ids, d.logprobs), repeats)
    print(f"(b) scoring the fresh {n}-token draft: {t_score * 1000:.0f} ms = {100 * t_score / to:.1f}% of its "
          f"generation time {to:.2f} s (target <= 50%)")


def _pass_rate(eng: Engine, text_ids, repeats) -> float:
    prompt = prompts_for(eng, BRIEF).unconditional
    eng.token_logprobs_ids(prompt, text_ids)
    t = _median_time(lambda: eng.token_logprobs_ids(prompt, text_ids), repeats)
    return len(text_ids) / t


def part_c(repeats: int, threads: int) -> None:
    base = Engine.load(n_threads=threads)
    text = " ".join(["The keeper counted the gulls twice, and both times there was one too many."] * 14)
    ids = base.tokenize_text(text)[:N_GEN]
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
        for n_batch, n_ubatch in ((512, 512), (256, 256), (512, 128), (512, 64)):
            for fa in (False, True):
                eng = Engine.load(str(path), n_threads=threads, n_batch=n_batch, n_ubatch=n_ubatch, flash_attn=fa)
                key = f"{qname:15s} n_batch={n_batch:3d} n_ubatch={n_ubatch:3d} flash_attn={int(fa)}"
                results[key] = _pass_rate(eng, ids, repeats)
                del eng
    tr = _transformers_rate(base, ids, repeats, threads)
    ship = results["Q4_1 (shipped)  n_batch=512 n_ubatch=512 flash_attn=0"]
    for k, v in sorted(results.items(), key=lambda kv: -kv[1]):
        print(f"(c) {k}: {v:7.1f} tok/s  ratio vs transformers fp32 {v / tr:.2f}")
    best = max(results, key=results.get)
    print(f"(c) transformers fp32 forward: {tr:.1f} tok/s; default setup (Q4_1, 512/512, no FA) "
          f"{ship:.1f} tok/s = {ship / tr:.2f}x; fastest: {best.strip()} {results[best]:.1f} tok/s = "
          f"{results[best] / tr:.2f}x")


def _transformers_rate(base: Engine, ids, repeats, threads) -> float:
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(threads)
    path = base.model.path
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    prompt_ids = base.tokenize_prompt(prompts_for(base, BRIEF).unconditional)
    x = torch.tensor([prompt_ids + list(ids)])

    def fwd():
        with torch.inference_mode():
            logits = model(x).logits[0, len(prompt_ids) - 1:-1].double()
            torch.log_softmax(logits, -1).gather(1, torch.tensor(ids)[:, None])
    fwd()
    return len(ids) / _median_time(fwd, repeats)


def part_d() -> None:
    import socket
    from gradio_client import Client
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1)
        variants = ["base"] + (["CQA"] if CQA_ADAPTER.is_file() else [])   # the app loads both at startup
        for v in variants:
            client.predict(task="Write a haiku about rain.", model=v, max_tokens=60, api_name="/draft")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS"))
        model_mb = catalog.resolve().path.stat().st_size / 2**20
        print(f"(d) app process ({' + '.join(variants)}) after a draft from each: peak {hwm.split(':')[1].strip()}, "
              f"now {rss.split(':')[1].strip()} (model file {model_mb:.0f} MiB, mmapped)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="a,b,c,d")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    parts = set(a.parts.split(","))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={a.threads}, "
          f"python {platform.python_version()}")
    if parts & {"a", "b"}:
        part_a_b(Engine.load(n_threads=a.threads), a.repeats)
    if "c" in parts:
        part_c(a.repeats, a.threads)
    if "d" in parts:
        part_d()


if __name__ == "__main__":
    main()
