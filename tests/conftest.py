"""Shared fixtures for the app tests: one real server (`python app.py`) for the whole test session.

    python -m pytest -q tests/test_app_api.py               # starts and stops the server itself
    CQA_TEST_URL=http://127.0.0.1:7860/ python -m pytest -q tests/test_app_api.py   # use a running one
    CQA_TEST_THREADS=1 python -m pytest -q tests/test_app_*.py   # on a machine busy with other work

Threads: 2 (the machine's cores) by default. When other processes keep both cores busy, llama.cpp's two
threads spin waiting for each other and one draft takes 8-16x longer than with 1 thread (measured here:
3 drafts of 24 tokens, 37-79 s with 2 threads, 5-6 s with 1, at load average 7).

The server runs the embedded SmolLM2-135M on 2 threads, on a free loopback port, as a child process
in its own process group; its log goes to a file whose tail is shown when it fails to start or dies.
Nothing starts unless a test asks for `server` (or `api`), so other test files pay nothing.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"   # screenshots, load reports (gitignored)
STARTUP_TIMEOUT_S = 180     # model load + gradio import; minutes only on a badly overloaded machine
REQUEST_TIMEOUT_S = 120     # one API call; a short draft takes ~1-3 s on 2 shared cores
LAUNCH_TRIES = 3            # a free port can be taken between our check and the server's bind
LOOPBACK = "127.0.0.1"
PORT_TAKEN = ("Cannot find empty port", "Address already in use", "Errno 98")  # gradio's / the OS's words
# The child must not go online: no analytics, no Hub, no proxy for loopback.
QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
             "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "MPLBACKEND": "Agg"}


@dataclass
class Server:
    url: str                                  # ends with "/"
    proc: subprocess.Popen | None = None      # None when CQA_TEST_URL points at an outside server
    log_path: Path | None = None

    def alive(self) -> bool:
        """The process (if ours) still runs and the page answers."""
        if self.proc is not None and self.proc.poll() is not None:
            return False
        try:
            return httpx.get(self.url + "config", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (ours alone: it was started in a new session), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _launch(log_path: Path, extra: tuple[str, ...] = ()) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CQA_", "GRADIO_SERVER"))}
    env.update(QUIET_ENV)
    port = free_port()
    threads = os.environ.get("CQA_THREADS") or os.environ.get("CQA_TEST_THREADS", "2")
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--host", LOOPBACK, "--port", str(port), "--threads", threads, *extra],
                                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    atexit.register(_stop, proc)  # also when pytest itself is interrupted
    server = Server(f"http://{LOOPBACK}:{port}/", proc, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return server  # the caller reads the log and decides whether to retry
        with contextlib.suppress(httpx.HTTPError):  # not listening yet: poll again
            if httpx.get(server.url + "config", timeout=5).status_code == 200:
                return server
        time.sleep(0.5)
    _stop(proc)
    raise RuntimeError(f"app.py did not answer on {server.url} within {STARTUP_TIMEOUT_S} s; log:\n"
                       + server.log_tail())


def launch_server(log_path: Path, extra: tuple[str, ...] = ()) -> Server:
    """`python app.py` on a free loopback port (retrying when the port was taken meanwhile)."""
    for k, v in QUIET_ENV.items():  # this process talks to loopback too (gradio_client, httpx)
        os.environ.setdefault(k, v)
    server = None
    for _ in range(LAUNCH_TRIES):
        server = _launch(log_path, extra)
        if server.proc.poll() is None:
            break
        if not any(m in server.log_text() for m in PORT_TAKEN):  # another reason: retrying will not help
            break
    if server.proc.poll() is not None:
        pytest.fail(f"app.py exited with code {server.proc.returncode} before answering; log:\n{server.log_tail()}",
                    pytrace=False)
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    """A running app: CQA_TEST_URL if set, else `python app.py --port P --threads 2`, stopped at the end."""
    for k, v in QUIET_ENV.items():  # this process talks to loopback too (gradio_client, httpx)
        os.environ.setdefault(k, v)
    if os.environ.get("CQA_TEST_URL"):
        url = os.environ["CQA_TEST_URL"].rstrip("/") + "/"
        yield Server(url)
        return
    server = launch_server(tmp_path_factory.mktemp("server") / "app.log")
    try:
        yield server
    finally:
        _stop(server.proc)


class Api:
    """The app's named endpoints through gradio_client, each call bounded in time."""

    def __init__(self, url: str):
        from gradio_client import Client
        self.client = Client(url, verbose=False, analytics_enabled=False, download_files=False)

    def call(self, api_name: str, timeout: float = REQUEST_TIMEOUT_S, **kwargs):
        return self.client.submit(api_name=api_name, **kwargs).result(timeout=timeout)

    def draft(self, timeout: float = REQUEST_TIMEOUT_S, **kwargs) -> dict:
        return self.call("/draft", timeout, **kwargs)

    def score(self, timeout: float = REQUEST_TIMEOUT_S, **kwargs) -> dict:
        return self.call("/score", timeout, **kwargs)


@pytest.fixture(scope="session")
def api(server) -> Api:
    return Api(server.url)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---- a real browser: Debian's chromium driven by the PyPI playwright package (never `playwright install`) ----
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@contextlib.contextmanager
def browser_page(url: str, height: int = 1100, accept_downloads: bool = False):
    """A page of `url` in a fresh chromium, 1400 px wide, 60 s default timeout; closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_context(viewport={"width": 1400, "height": height},
                                     accept_downloads=accept_downloads).new_page()
            pg.set_default_timeout(60_000)
            pg.goto(url)
            yield pg
        finally:
            browser.close()
