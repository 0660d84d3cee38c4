"""Load the app's API with concurrent gradio_client users sending mixed valid and invalid requests.

    python bench/load.py --url http://127.0.0.1:7860/ --users 8 --requests 48
    python bench/load.py --url http://127.0.0.1:7860/ --users 8 --requests 16 --json load.json

Loopback only, and bounded: at most --requests requests (1,000 at most) within --time-limit seconds.
Each user is its own gradio_client.Client. Request k is case k mod len(MIX): valid drafts and scores,
and invalid requests that must each come back with their own clear error (AppError, no traceback).
Prints answered / failed / clear errors and latency percentiles, then checks that the server still
answers. Exit status 0 only when every valid request was answered and every invalid one got its error.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

MAX_REQUESTS = 1000
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
BRIEF = dict(task="Write the opening line of a ghost story", intent="unease",
             world="Mara keeps the lighthouse on Skerry Rock.")
TEXT = "Mara climbed the lighthouse stairs at dusk, and the lamp room was already warm."


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str         # "/draft" or "/score"
    kwargs: dict
    error: str | None     # None: a valid request; else a regex its error message must match


MIX = [
    Case("draft", "/draft", dict(**BRIEF, max_tokens=16), None),
    Case("score", "/score", dict(text=TEXT, **BRIEF), None),
    Case("empty-brief", "/draft", dict(max_tokens=16), r"the brief is empty"),
    Case("bad-sampler", "/draft", dict(task="t", temperature=5, top_p=0, max_tokens=0),
         r"temperature 5 .*; top_p 0 .*; max_tokens 0 "),
    Case("draft-plain", "/draft", dict(**BRIEF, template="plain", max_tokens=16), None),
    Case("too-long", "/draft", dict(task="x" * 30_000, max_tokens=16), r"too long: task is 30,000 characters"),
    Case("score-other", "/score", dict(text=TEXT, task="Write a recipe for lemon cake"), None),
    Case("unknown-model", "/score", dict(text=TEXT, task="t", model="nope"), r"unknown variant 'nope'"),
    Case("empty-text", "/score", dict(text="  ", **BRIEF), r"no text to score"),
]


@dataclass
class Outcome:
    index: int
    case: str
    valid: bool
    result: str           # "answered", "clear-error", "failed", "not-sent"
    latency_s: float = 0.0
    detail: str = ""


@dataclass
class Summary:
    url: str
    users: int
    requests: int
    wall_s: float
    valid: int = 0
    invalid: int = 0
    answered: int = 0          # valid requests answered with a well-formed result
    clear_errors: int = 0      # invalid requests refused with their expected message
    failed: int = 0            # anything else: wrong answer, wrong or unclear error, timeout
    not_sent: int = 0          # left over when the time limit ran out
    server_alive_after: bool = False
    latency_valid_s: dict = field(default_factory=dict)
    latency_invalid_s: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.answered == self.valid and self.clear_errors == self.invalid and self.failed == 0
                and self.not_sent == 0 and self.server_alive_after)


def percentiles(values: list[float]) -> dict:
    """Nearest-rank percentiles, seconds: [1, 2, 3, 4] -> p50 2, p90 4, p95 4, p99 4, max 4."""
    if not values:
        return {}
    v = sorted(values)
    pick = lambda q: v[max(0, math.ceil(q / 100 * len(v)) - 1)]  # noqa: E731
    return {"p50": pick(50), "p90": pick(90), "p95": pick(95), "p99": pick(99), "max": v[-1], "n": len(v)}


def _check_answer(case: Case, out) -> str:
    """'' when a valid request's answer is well formed, else what is wrong with it."""
    score = out.get("score") if case.endpoint == "/draft" and isinstance(out, dict) else out
    if case.endpoint == "/draft" and not (isinstance(out, dict) and isinstance(out.get("draft"), str)):
        return f"no draft in {str(out)[:200]}"
    if case.endpoint == "/draft" and score is None:
        return ""  # the model ended the draft at once: answered, nothing to score
    if not (isinstance(score, dict) and isinstance(score.get("tokens"), list)
            and len(score["tokens"]) == score.get("n_tokens", -1) and math.isfinite(score.get("I", math.nan))):
        return f"malformed score {str(score)[:200]}"
    return ""


def _one(client, k: int, deadline: float) -> Outcome:
    from gradio_client.exceptions import AppError

    case = MIX[k % len(MIX)]
    kwargs = dict(case.kwargs, seed=k) if case.endpoint == "/draft" else case.kwargs
    left = deadline - time.monotonic()
    if left <= 0:
        return Outcome(k, case.name, case.error is None, "not-sent")
    t0 = time.monotonic()
    try:
        out = client.submit(api_name=case.endpoint, **kwargs).result(timeout=left)
    except AppError as e:
        dt, msg = time.monotonic() - t0, str(e)
        if case.error is None:
            return Outcome(k, case.name, True, "failed", dt, f"valid request refused: {msg[:300]}")
        if re.search(case.error, msg) and "Traceback" not in msg and "Internal error" not in msg:
            return Outcome(k, case.name, False, "clear-error", dt, msg[:120])
        return Outcome(k, case.name, False, "failed", dt, f"unclear error: {msg[:300]}")
    except Exception as e:  # noqa: BLE001 - timeouts, dropped connections: all count as failures
        why = str(e)[:300] or ("no answer within the time limit" if isinstance(e, TimeoutError) else "")
        return Outcome(k, case.name, case.error is None, "failed", time.monotonic() - t0,
                       f"{type(e).__name__}: {why}")
    dt = time.monotonic() - t0
    if case.error is not None:
        return Outcome(k, case.name, False, "failed", dt, f"invalid request answered: {str(out)[:200]}")
    problem = _check_answer(case, out)
    return Outcome(k, case.name, True, "failed" if problem else "answered", dt, problem)


def _user(url: str, ticket, deadline: float, outcomes: list, lock: threading.Lock) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    except Exception as e:  # noqa: BLE001 - a user that cannot connect fails every request it takes
        client, why = None, f"cannot connect: {type(e).__name__}: {e}"
    while (k := ticket()) is not None:
        if client is None:
            case = MIX[k % len(MIX)]
            o = Outcome(k, case.name, case.error is None, "failed", 0.0, why)
        else:
            o = _one(client, k, deadline)
        with lock:
            outcomes.append(o)


def _alive(url: str, timeout: float) -> bool:
    from gradio_client import Client
    try:
        c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        out = c.submit(api_name="/score", text=TEXT, **BRIEF).result(timeout=timeout)
        return isinstance(out, dict) and out.get("n_tokens", 0) > 0
    except Exception:  # noqa: BLE001
        return False


def run(url: str, users: int, requests: int, time_limit: float) -> Summary:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    ticket_lock = threading.Lock()

    def ticket():
        with ticket_lock:
            return next(counter, None)

    t0 = time.monotonic()
    deadline = t0 + time_limit
    with ThreadPoolExecutor(max_workers=users) as pool:
        for _ in range(users):
            pool.submit(_user, url, ticket, deadline, outcomes, lock)
    wall = time.monotonic() - t0
    s = Summary(url, users, requests, round(wall, 2))
    s.valid = sum(o.valid for o in outcomes)
    s.invalid = len(outcomes) - s.valid
    counts = {r: sum(o.result == r for o in outcomes) for r in ("answered", "clear-error", "failed", "not-sent")}
    s.answered, s.clear_errors, s.failed, s.not_sent = (counts[r] for r in counts)
    s.latency_valid_s = percentiles([o.latency_s for o in outcomes if o.valid and o.result == "answered"])
    s.latency_invalid_s = percentiles([o.latency_s for o in outcomes if not o.valid and o.result == "clear-error"])
    s.failures = [asdict(o) for o in sorted(outcomes, key=lambda o: o.index) if o.result in ("failed", "not-sent")]
    s.server_alive_after = _alive(url, timeout=max(30.0, deadline - time.monotonic()))
    return s


def _fmt(p: dict) -> str:
    if not p:
        return "none"
    return "  ".join(f"{k} {p[k]:.2f} s" for k in ("p50", "p90", "p99", "max")) + f"  (n={p['n']})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the app, e.g. http://127.0.0.1:7860/ (loopback only)")
    ap.add_argument("--users", type=int, default=8, help="concurrent gradio_client users (1-64)")
    ap.add_argument("--requests", type=int, default=48, help=f"requests in all (1-{MAX_REQUESTS})")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds for the whole run")
    ap.add_argument("--json", help="also write the summary here as JSON")
    a = ap.parse_args(argv)
    host = urlparse(a.url).hostname
    if host not in LOOPBACK_HOSTS:
        print(f"error: --url must be a loopback address ({', '.join(sorted(LOOPBACK_HOSTS))}), got {host!r}",
              file=sys.stderr)
        return 2
    if not (1 <= a.users <= 64 and 1 <= a.requests <= MAX_REQUESTS and 0 < a.time_limit <= 3600):
        print(f"error: need 1 <= --users <= 64, 1 <= --requests <= {MAX_REQUESTS}, 0 < --time-limit <= 3600",
              file=sys.stderr)
        return 2
    s = run(a.url.rstrip("/") + "/", a.users, a.requests, a.time_limit)
    print(f"{s.requests} requests ({s.valid} valid, {s.invalid} invalid) from {s.users} users in {s.wall_s:.1f} s")
    print(f"answered {s.answered}/{s.valid} valid   clear errors {s.clear_errors}/{s.invalid} invalid   "
          f"failed {s.failed}   not sent {s.not_sent}")
    print(f"latency, answered:      {_fmt(s.latency_valid_s)}")
    print(f"latency, clear errors:  {_fmt(s.latency_invalid_s)}")
    print(f"server answers after the load: {'yes' if s.server_alive_after else 'NO'}")
    for f in s.failures[:20]:
        print(f"  #{f['index']} {f['case']}: {f['result']}: {f['detail']}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({**asdict(s), "ok": s.ok}, fh, indent=1)
    return 0 if s.ok else 1


if __name__ == "__main__":
    sys.exit(main())
