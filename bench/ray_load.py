"""The 8-user load of bench/load.py against the app in three setups, side by side: in-process llama.cpp
(2 threads), Ray Serve with 2 replicas x 1 thread, Ray Serve with 1 replica x 2 threads.

    python bench/ray_load.py                      # ~10 min on 2 idle cores; loopback only
    python bench/ray_load.py --users 8 --requests 48 --json out.json

Each setup is a fresh `python app.py` (the Ray ones start a local Ray cluster, stopped afterwards). Printed
per setup: valid requests answered, invalid ones refused with their clear message, answered requests per
minute, and the latency of answered requests (p50, p95).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402

SETUPS = {"in-process, 2 threads": ["--threads", "2"],
          "Ray Serve, 2 replicas x 1 thread": ["--ray", "auto", "--replicas", "2", "--replica-threads", "1"],
          "Ray Serve, 1 replica x 2 threads": ["--ray", "auto", "--replicas", "1", "--replica-threads", "2"]}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str, timeout: float) -> bool:
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):   # not listening yet: poll again
            if httpx.get(url + "config", timeout=5).status_code == 200:
                return True
        time.sleep(1)
    return False


def bench(name: str, flags: list[str], users: int, requests: int) -> dict:
    port = _port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--concurrency", "8", *flags],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        if not _up(url, 300):
            return {"setup": name, "error": "the app did not start"}
        s = load.run(url, users, requests, 900.0)
        lat = s.latency_valid_s
        return {"setup": name, "answered": s.answered, "valid": s.valid, "clear_errors": s.clear_errors,
                "invalid": s.invalid, "failed": s.failed, "wall_s": s.wall_s,
                "per_min": 60 * s.answered / s.wall_s if s.wall_s else None,
                "p50_s": lat.get("p50"), "p95_s": lat.get("p95"), "alive_after": s.server_alive_after}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if "--ray" in flags:
            subprocess.run(["ray", "stop", "--force"], capture_output=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args(argv)
    rows = [bench(name, flags, a.users, a.requests) for name, flags in SETUPS.items()]
    print("| setup | valid answered | invalid refused clearly | answered/min | p50 s | p95 s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['setup']} | {r['error']} | | | | |")
            continue
        print(f"| {r['setup']} | {r['answered']}/{r['valid']} | {r['clear_errors']}/{r['invalid']} | "
              f"{r['per_min']:.1f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r.get("failed") == 0 and r.get("alive_after") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
