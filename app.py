"""The CQA writing assistant: a Gradio page over the assistant/ core. This file only assembles it; the page
is in page/ (one module per tab, the JSON API, the handlers' shared plumbing).

    python app.py                      # http://127.0.0.1:7860, embedded SmolLM2-135M-Instruct
    python app.py --port 8000 --threads 2 --model path/to/model.gguf

Every flag is a field of `Settings`; most can be set by an environment variable instead (a Space's
variables), read here in main() and nowhere else: --host/CQA_HOST (or GRADIO_SERVER_NAME), --port/CQA_PORT
(or GRADIO_SERVER_PORT), --model/CQA_MODEL, --adapter/CQA_ADAPTER, --passage-adapter/CQA_PASSAGE_ADAPTER,
--threads/CQA_THREADS, --n-ctx/CQA_N_CTX, ...; `python app.py --help` lists them all.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

import gradio as gr

from assistant import catalog
from assistant.backend import LocalBackend
from assistant.engine import DEFAULT_N_CTX
from assistant.errors import BadInput, UserError
from assistant.history import History
from assistant.catalog import DEFAULT_CACHE
from assistant.llama import EXTRA_BUFTS_MODES
from assistant.pool import Pool, PoolConfig
from page import annotate
from page.api import Api
from page.compare import CompareTab
from page.plumbing import Cancels
from page.score import ScoreTab
from page.write import WriteTab

TITLE = "CQA writing assistant"


def _flag(default, help: str, *env: str, **argparse_kw):
    """A Settings field: its default, its --help line, the environment variables that may set it (first set
    wins), and anything else argparse needs (type, nargs, ...)."""
    return field(default=default, metadata={"help": help, "env": env, "argparse": argparse_kw})


@dataclass(frozen=True)
class Settings:
    """How the app is started; `python app.py --help` is generated from these fields."""
    host: str = _flag("127.0.0.1", "bind address (0.0.0.0 for a Space)", "CQA_HOST", "GRADIO_SERVER_NAME")
    port: int = _flag(7860, "port", "CQA_PORT", "GRADIO_SERVER_PORT", type=int)
    model: str | None = _flag(None, "catalog name, .gguf path or owner/repo:file.gguf", "CQA_MODEL")
    adapter: str | None = _flag(None, "CQA LoRA adapter: a .gguf path or a Hub repo OWNER/NAME made by "
                                "`python -m finetune push`", "CQA_ADAPTER")
    passage_adapter: str | None = _flag(None, "passage-only LoRA adapter (the CQA-passage model): a .gguf path "
                                        "or a Hub repo OWNER/NAME", "CQA_PASSAGE_ADAPTER")
    no_cqa: bool = _flag(False, "offer the base model alone (no tuned adapter)", action="store_true")
    annotations: Path | None = _flag(None, "annotation file (JSON Lines) the Annotate tab appends to; without "
                                     "it the tab is hidden", "CQA_ANNOTATIONS", type=Path)
    concurrency: int = _flag(2, "requests run at once; one llama.cpp context serves them one at a time",
                             "CQA_CONCURRENCY", type=int)
    queue_size: int = _flag(32, "requests that may wait", "CQA_QUEUE_SIZE", type=int)
    threads: int | None = _flag(None, "CPU threads (0 or unset: all cores)", "CQA_THREADS", type=int)
    n_ctx: int = _flag(DEFAULT_N_CTX, "context window, tokens", "CQA_N_CTX", type=int)
    extra_bufts: str = _flag("auto", "llama.cpp's extra weight buffer types: auto (off on CPUs with AMX, llama.cpp "
                             "issue 20824), on, off; checked first in a child process", "CQA_EXTRA_BUFTS",
                             choices=EXTRA_BUFTS_MODES)
    cache_dir: Path = _flag(DEFAULT_CACHE, "cache folder (assembled models, copies of the weights, the start-up "
                            "probe's answers)", "CQA_CACHE", type=Path)
    weights: str | None = _flag(None, "the model file itself (shipped) or a copy made here at first use (F32, F16, "
                                "BF16, Q8_0), each optionally +FA (flash attention, e.g. BF16+FA); default: the "
                                "measured choice for the embedded model", "CQA_WEIGHTS")
    ray: str | None = _flag(None, "run the engine as Ray Serve replicas (auto: a running local cluster, else "
                            "start one)", "CQA_RAY", metavar="auto|ADDRESS")
    replicas: int = _flag(2, "Ray: engine replicas", "CQA_REPLICAS", type=int)
    replica_threads: int = _flag(1, "Ray: llama.cpp threads (and CPUs) per replica", "CQA_REPLICA_THREADS",
                                 type=int)
    autoscale: tuple[float, float, float] | None = _flag(
        None, "Ray: autoscale replicas between MIN and MAX at TARGET ongoing requests per replica", type=float,
        nargs=3, metavar=("MIN", "MAX", "TARGET"))

    def __post_init__(self):
        if self.autoscale is not None:
            object.__setattr__(self, "autoscale", tuple(self.autoscale))
        problems = [f"--{name.replace('_', '-')} {getattr(self, name)} must be at least {low}"
                    for name, low in (("port", 1), ("concurrency", 1), ("queue_size", 1), ("n_ctx", 1),
                                      ("replicas", 1), ("replica_threads", 1))
                    if getattr(self, name) < low]
        if self.port > 65535:
            problems.append(f"--port {self.port} must be at most 65535")
        if self.threads is not None and self.threads < 0:
            problems.append(f"--threads {self.threads} must be 0 (all cores) or more")
        if self.autoscale is not None:
            lo, hi, target = self.autoscale
            if not (0 <= lo <= hi and hi >= 1 and target > 0):
                problems.append(f"--autoscale {lo:g} {hi:g} {target:g}: want 0 <= MIN <= MAX, MAX >= 1, TARGET > 0")
        if problems:
            raise BadInput("; ".join(problems))

    def pool_config(self) -> PoolConfig:
        return PoolConfig(self.model, self.adapter, self.threads or None, self.n_ctx, cqa=not self.no_cqa,
                          passage_adapter=self.passage_adapter, extra_bufts=self.extra_bufts, probe=True,
                          cache_dir=Path(self.cache_dir), weights=self.weights)

    def backend(self):
        """The in-process backend, or Ray Serve replicas with --ray (Ray is imported only then)."""
        if not self.ray:
            return LocalBackend(Pool(self.pool_config()))
        from assistant import ray_backend
        a = self.autoscale
        serve = ray_backend.ServeConfig(self.ray, self.replicas, float(self.replica_threads), self.replica_threads,
                                        (int(a[0]), int(a[1]), a[2]) if a else None)
        return ray_backend.RayBackend(ray_backend.deploy(self.pool_config(), serve))


def parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """One flag per Settings field, its default taken from the first of its environment variables that is set."""
    p = argparse.ArgumentParser(description=TITLE)
    for f in fields(Settings):
        env = f.metadata["env"]
        given = next((environ[e] for e in env if environ.get(e)), None)
        where = f" (${' or $'.join(env)})" if env else ""
        p.add_argument("--" + f.name.replace("_", "-"), default=f.default if given is None else given,
                       help=f.metadata["help"] + where, **f.metadata["argparse"])
    return p


def settings(argv=None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Flags over environment over defaults; a bad value exits with one line (argparse's usage error)."""
    p = parser(environ)
    args = vars(p.parse_args(argv))   # argparse converts a string default (an environment value) by its type
    try:
        return Settings(**args)
    except UserError as e:
        p.error(str(e))


def build(backend, *, annotations: Path | None = None, model_name: str = catalog.DEFAULT_MODEL) -> gr.Blocks:
    """The page over `backend` (LocalBackend or ray_backend.RayBackend): the Write, Compare and Score tabs, the
    Annotate tab when `annotations` names the file it appends to, and the JSON API (/draft, /compare, /score).
    `model_name` is what exported drafts say wrote them."""
    cancels = Cancels()   # one Stop bookkeeping: Stop on either tab ends this session's draft
    history = History()   # draft ids: versions for the revision tools and Undo, shared by the tabs and the API
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("# CQA writing assistant\nDescribe what you want; get drafts with a *calibrated surprise* "
                    "score: how much your brief explains words that would be surprising on their own.")
        shared = WriteTab(backend, cancels, model_name, history).layout()
        CompareTab(backend, cancels).layout(shared)
        ScoreTab(backend, history, cancels).layout()
        if annotations is not None:
            annotate.build(annotations, backend)
        Api(backend, history).register()
    return demo


def main(argv=None):
    s = settings(argv, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        backend = s.backend()
        backend.load()   # load now: a bad model or adapter fails here, in one line
    except UserError as e:
        raise SystemExit(f"error: {e}")
    demo = build(backend, annotations=s.annotations, model_name=s.model or catalog.DEFAULT_MODEL)
    demo.queue(default_concurrency_limit=s.concurrency, max_size=s.queue_size)
    demo.launch(server_name=s.host, server_port=s.port, show_error=True)


if __name__ == "__main__":
    main()
