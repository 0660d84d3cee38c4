"""8 concurrent gradio_client users with mixed valid and invalid requests: bench/load.py against the server.

    python -m pytest -q tests/test_app_load.py
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "bench" / "load.py"
USERS = 8
REQUESTS = 16          # two per user: about 7 valid (short drafts and scores) and 9 invalid
TIME_LIMIT_S = 240     # generous: the 2 cores are shared; a quiet machine needs ~15 s


def test_every_valid_request_is_answered_under_load(server, artifacts, tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, str(LOAD), "--url", server.url, "--users", str(USERS),
                           "--requests", str(REQUESTS), "--time-limit", str(TIME_LIMIT_S), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIME_LIMIT_S + 60)
    (artifacts / "load.txt").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    assert out.exists(), proc.stdout + proc.stderr
    s = json.loads(out.read_text())
    report = proc.stdout + "\n" + json.dumps(s["failures"], indent=1)
    assert s["valid"] + s["invalid"] == REQUESTS and s["valid"] >= 5 and s["invalid"] >= 5, report
    assert s["answered"] == s["valid"], report
    assert s["clear_errors"] == s["invalid"], report
    assert s["failed"] == 0 and s["not_sent"] == 0, report
    assert s["server_alive_after"] and server.alive(), report
    assert proc.returncode == 0 and s["ok"], report
    assert "answered" in proc.stdout and "p50" in proc.stdout


def test_load_script_refuses_a_non_loopback_url():
    proc = subprocess.run([sys.executable, str(LOAD), "--url", "http://example.com/", "--requests", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr
