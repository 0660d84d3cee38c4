"""The start-up probe: decode a few tokens in a child process with the chosen weight placement, so that a
crash in llama.cpp's native code (ggml-org/llama.cpp issue 20824: AMX weight buffers) kills the child, not
the server; if the child dies, the server loads with extra buffer types off.

    python -m assistant.probe                        # what `python app.py` checks first, as JSON
    python -m assistant.probe --extra-bufts on --threads 2 path/to/model.gguf

The answer is cached per llama.cpp build, CPU (its system info line) and model file, in
<cache>/load-probe.json, so a machine probes once.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import atomic, catalog, llama
from .errors import BadModelFile

log = logging.getLogger(__name__)

PROBE_FILE = "load-probe.json"
PROBE_TIMEOUT = 180      # seconds for the child to load and decode (a 135M model takes ~2 s)
PROMPT = b"The ferry left at dawn and the harbour emptied behind it, gull by gull."
N_STEPS = 4              # single-token decode steps after the prompt batch (one of them with two sequences)


@dataclass(frozen=True)
class Placement:
    """How the weights are placed, and how we know it is safe."""
    extra_bufts: bool    # llama.cpp's extra CPU buffer types (AMX / CPU_REPACK) on or off
    reason: str          # in words, for the log and `python -m assistant.probe`
    probed: bool         # a child process decoded with it (False: decided, not checked)


def decide(model_path: Path, mode: str = "auto", *, n_threads: int = 1, cache_dir: Path = catalog.DEFAULT_CACHE,
           child: list[str] | None = None) -> Placement:
    """The placement for `model_path`: llama.choose_extra_bufts's choice, checked in a child process (cached);
    extra buffer types off, with one warning line, if the child dies. `child`: the command to run instead of
    this module's own (tests use it to make a child crash)."""
    info = llama.system_info()
    extra, why = llama.choose_extra_bufts(mode, info)
    key = _key(model_path, info, extra)
    cache = Path(cache_dir) / PROBE_FILE
    known = _read(cache)
    if child is None and key in known:
        return Placement(**known[key])
    outcome = _run_child(model_path, extra, n_threads, child)
    if outcome is None:
        found = Placement(extra, why, probed=True)
    elif extra:
        log.warning("llama.cpp died in a child process decoding %s with extra buffer types (%s); loading without "
                    "them (safe, possibly slower on this CPU)", model_path.name, outcome)
        found = Placement(False, f"off: the probe with them on died ({outcome})", probed=True)
        if child is None and _run_child(model_path, False, n_threads, None) is not None:
            raise _unsafe(model_path, outcome)
    else:
        raise _unsafe(model_path, outcome)
    if child is None:
        known[key] = asdict(found)
        atomic.write_json(cache, known)
    return found


def _unsafe(model_path: Path, outcome: str) -> BadModelFile:
    return BadModelFile(f"llama.cpp dies decoding {model_path} on this machine even with extra buffer types off "
                        f"({outcome}); run `python -m assistant.probe {model_path}` to see it, and report the "
                        "system info line it prints")


def _key(model_path: Path, info: str, extra: bool) -> str:
    import llama_cpp
    st = Path(model_path).stat()
    raw = f"{llama_cpp.__version__}|{info}|{Path(model_path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{extra}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _read(cache: Path) -> dict:
    try:
        got = json.loads(cache.read_text(encoding="utf-8"))
        return got if isinstance(got, dict) else {}
    except (OSError, ValueError):
        return {}


def _run_child(model_path: Path, extra: bool, n_threads: int, child: list[str] | None) -> str | None:
    """None when the child decoded and exited cleanly; else what happened, in words."""
    cmd = child or [sys.executable, "-m", "assistant.probe", "--child", "--extra-bufts", "on" if extra else "off",
                    "--threads", str(n_threads), str(model_path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        return f"no answer in {PROBE_TIMEOUT} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"killed by signal {-done.returncode}"
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    return f"exit code {done.returncode}: {tail[0][:200]}"


def decode_a_little(model_path: Path, extra_bufts: bool, n_threads: int) -> dict:
    """Load the weights and decode a prompt batch, single steps and a two-sequence step: the matrix products
    that every draft and score runs. Returns timings; a native crash ends the process."""
    t0 = time.perf_counter()
    w = llama.Weights.load(Path(model_path), 0, extra_bufts=extra_bufts)
    ctx = llama.Context(w, n_cells=256, n_seq=2, n_batch=64, n_threads=n_threads)
    try:
        ids = w.tokenize(PROMPT, add_bos=w.add_bos, special=False)
        n = len(ids)
        list(ctx.decode([(t, p, 0, p == n - 1) for p, t in enumerate(ids)]))
        tok = ids[-1]
        for k in range(N_STEPS):
            entries = [(tok, n + k, 0, True)] + ([(tok, k, 1, True)] if k == N_STEPS - 1 else [])
            for _, rows in ctx.decode(entries):
                tok = int(rows[0].argmax())
        return {"ok": True, "tokens": n + N_STEPS, "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        ctx.close()
        w.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant.probe", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=None, help="catalog name or .gguf path (default: the embedded model)")
    p.add_argument("--extra-bufts", default="auto", choices=llama.EXTRA_BUFTS_MODES)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)   # decode once, in this process
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(decode_a_little(Path(a.model), a.extra_bufts == "on", a.threads)))
        return 0
    path = Path(a.model) if a.model and Path(a.model).is_file() else catalog.resolve(a.model).path
    info = llama.system_info()
    cache = Path(os.environ.get("CQA_CACHE") or catalog.DEFAULT_CACHE)   # an entry point: the one env read here
    placement = decide(path, a.extra_bufts, n_threads=a.threads, cache_dir=cache)
    print(json.dumps({"model": str(path), "system_info": info, **asdict(placement)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
