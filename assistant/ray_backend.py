"""The engine as a Ray Serve deployment, and the backend the page uses to reach it (`python app.py --ray auto`).

    python app.py --ray auto --replicas 2 --replica-threads 1     # a local Ray cluster, 2 replicas
    ray start --head && python app.py --ray 127.0.0.1:6379         # an existing cluster (head + workers)

Each replica loads the model once (base + CQA as variants of one context, as in-process) with `num_cpus`
and llama.cpp threads set per replica; `--replicas N`, or `--autoscale MIN MAX TARGET` (target ongoing
requests per replica). The page is a thin client: it calls the deployment through a DeploymentHandle,
drafts streaming token by token through a streaming handle. A replica lost in the middle of a draft is
retried once from the start with the same seed (the same draft, on another replica); if that fails too,
the user gets one clear message. Ray restarts the lost replica.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .brief import Brief
from .engine import EngineError
from .errors import UserError
from .pool import Pool, PoolConfig
from .sampler import Sampler
from .writer import Update

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
APP_NAME = "cqa-engine"
NAMESPACE = "cqa"
RETRIES = 1   # a draft whose replica died is started again once, same seed


@dataclass(frozen=True)
class ServeConfig:
    address: str = "auto"                 # "auto": a running cluster, else a local one; or HOST:PORT
    replicas: int = 2                     # fixed number of replicas (ignored with autoscale)
    replica_cpus: float = 1.0             # num_cpus per replica
    replica_threads: int = 1              # llama.cpp threads per replica
    autoscale: tuple[int, int, float] | None = None   # (min, max, target ongoing requests per replica)
    local_cpus: int | None = None         # CPUs of a local cluster started here (None: all)


class EngineReplica:
    """One replica: the model loaded once; the writer's work on it."""

    def __init__(self, pool_config: PoolConfig):
        from .backend import LocalBackend
        self.backend = LocalBackend(Pool(pool_config))
        self.backend.load()
        self.replica = os.getpid()

    def variants(self) -> list[str]:
        return self.backend.variants()

    def pid(self) -> int:
        return self.replica

    def write(self, kw: dict):
        for u in self.backend.write(**kw):
            u.replica = self.replica
            yield u

    def best_of(self, kw: dict):
        for u in self.backend.best_of(**kw):
            u.replica = self.replica
            yield u

    def score(self, kw: dict) -> dict:
        return self.backend.score(**kw)

    def tokenize(self, kw: dict) -> list[int]:
        return self.backend.tokenize(**kw)

    def write_notes(self, kw: dict) -> str:
        return self.backend.write_notes(**kw)

    def scored(self, kw: dict):
        return self.backend.scored(**kw)

    def alternatives(self, kw: dict) -> list[dict]:
        return self.backend.alternatives(**kw)

    def rewrite(self, kw: dict):
        for u in self.backend.rewrite(**kw):
            u.replica = self.replica
            yield u

    def suggest(self, kw: dict) -> list[dict]:
        return self.backend.suggest(**kw)


def _connect(cfg: ServeConfig) -> None:
    import ray
    if ray.is_initialized():
        return
    env = {"env_vars": {"PYTHONPATH": str(ROOT)}}   # threads travel in the PoolConfig, not the environment
    if cfg.address == "auto":
        try:   # a running cluster on this machine, else start a local one
            ray.init(address="auto", namespace=NAMESPACE, runtime_env=env, log_to_driver=False)
            return
        except (ConnectionError, RuntimeError):
            ray.init(num_cpus=cfg.local_cpus, namespace=NAMESPACE, runtime_env=env, log_to_driver=False,
                     include_dashboard=False)
            return
    # another machine's cluster: ship this repository to the workers
    ray.init(address=cfg.address, namespace=NAMESPACE, log_to_driver=False,
             runtime_env={"working_dir": str(ROOT), "excludes": [".git", "tests/artifacts", "finetune/runs",
                                                                 "eval/out", "*.png"]})


def deploy(pool_config: PoolConfig, cfg: ServeConfig):
    """Start (or update) the deployment on the cluster; returns its DeploymentHandle."""
    from ray import serve

    _connect(cfg)
    opts = {"ray_actor_options": {"num_cpus": cfg.replica_cpus}, "max_ongoing_requests": 4,
            "health_check_period_s": 2, "graceful_shutdown_timeout_s": 5}
    if cfg.autoscale:
        lo, hi, target = cfg.autoscale
        opts["autoscaling_config"] = {"min_replicas": lo, "max_replicas": hi, "target_ongoing_requests": target}
    else:
        opts["num_replicas"] = cfg.replicas
    cfg_threads = dataclasses.replace(pool_config, n_threads=cfg.replica_threads)
    app = serve.deployment(EngineReplica, name="EngineReplica", **opts).bind(cfg_threads)
    return serve.run(app, name=APP_NAME, route_prefix=None)


class RayBackend:
    """The page's backend on Ray Serve: the same methods as LocalBackend, each a call to the deployment."""

    def __init__(self, handle):
        self.handle = handle
        self._variants = None

    def variants(self) -> list[str]:
        if self._variants is None:
            self._variants = self.handle.variants.remote().result()
        return self._variants

    def load(self) -> None:
        self.variants()   # the replicas loaded every variant when they started: a bad adapter has failed there

    def _stream(self, method: str, kw: dict, cancel: threading.Event | None) -> Iterator[Update]:
        from ray.exceptions import RayError
        for attempt in range(RETRIES + 1):
            gen = getattr(self.handle.options(stream=True), method).remote(kw)
            scored = None
            try:
                for u in gen:
                    scored = u.result or scored
                    if cancel is not None and cancel.is_set() and not u.done:
                        gen.cancel()   # ask Serve to cancel the request; the user's draft ends here
                        yield _cancelled(u, scored)
                        return
                    yield u
                return
            except RayError as e:
                if _user_error(e) is not None:
                    raise _user_error(e) from None
                log.warning("replica lost during %s (attempt %d): %s", method, attempt + 1, type(e).__name__)
                if attempt == RETRIES:
                    raise EngineError("the engine replica writing this draft was lost, and so was the retry: "
                                      "try again in a moment") from None
                yield Update("", notice="The engine replica was lost: starting the draft again (same seed).")

    def write(self, brief: Brief, sampler: Sampler, *, variant: str, strength: float = 1.0, template: str = "chat",
              cancel=None, prefix_ids=None, guidance: float = 0.0, notes: bool = True) -> Iterator[Update]:
        kw = dict(brief=brief, sampler=sampler, variant=variant, strength=strength, template=template,
                  prefix_ids=prefix_ids, guidance=guidance, notes=notes)
        yield from self._stream("write", kw, cancel)

    def best_of(self, brief: Brief, sampler: Sampler, n: int, *, variant: str, strength: float = 1.0,
                template: str = "chat", cancel=None, guidance: float = 0.0, notes: bool = True) -> Iterator[Update]:
        kw = dict(brief=brief, sampler=sampler, n=n, variant=variant, strength=strength, template=template,
                  guidance=guidance, notes=notes)
        yield from self._stream("best_of", kw, cancel)

    def _call(self, method: str, kw: dict):
        from ray.exceptions import RayError
        for attempt in range(RETRIES + 1):
            try:
                return getattr(self.handle, method).remote(kw).result()
            except RayError as e:
                if _user_error(e) is not None:
                    raise _user_error(e) from None
                if attempt == RETRIES:
                    raise EngineError("the engine replica was lost, and so was the retry: try again") from None

    def score(self, brief: Brief, text: str, *, variant: str, template: str = "chat") -> dict:
        return self._call("score", dict(brief=brief, text=text, variant=variant, template=template))

    def tokenize(self, text: str, *, variant: str, strength: float = 1.0) -> list[int]:
        return self._call("tokenize", dict(text=text, variant=variant, strength=strength))

    def write_notes(self, brief: Brief, seed: int = 0) -> str:
        return self._call("write_notes", dict(brief=brief, seed=seed))

    def scored(self, brief: Brief, text: str, *, variant: str, strength: float = 1.0, template: str = "chat"):
        return self._call("scored", dict(brief=brief, text=text, variant=variant, strength=strength, template=template))

    def alternatives(self, result, position: int, *, variant: str, strength: float = 1.0, ids=None,
                     sort: str = "p") -> list[dict]:
        return self._call("alternatives", dict(result=result, position=position, variant=variant, strength=strength,
                                               ids=ids, sort=sort))

    def rewrite(self, brief: Brief, sampler: Sampler, ids, position: int, token: int, *, variant: str,
                strength: float = 1.0, template: str = "chat", guidance: float = 0.0,
                cancel=None) -> Iterator[Update]:
        kw = dict(brief=brief, sampler=sampler, ids=ids, position=position, token=token, variant=variant,
                  strength=strength, template=template, guidance=guidance)
        yield from self._stream("rewrite", kw, cancel)

    def suggest(self, brief: Brief, text: str, start: int, end: int, sampler: Sampler, *, variant: str,
                strength: float = 1.0, template: str = "chat", n: int = 3, before=None) -> list[dict]:
        return self._call("suggest", dict(brief=brief, text=text, start=start, end=end, sampler=sampler,
                                          variant=variant, strength=strength, template=template, n=n, before=before))


def _cancelled(u: Update, scored) -> Update:
    """The draft as it stood when Stop was pressed, with the last live score the replica sent (it covers the
    draft up to a few tokens before the end: the replica sends a score every writer.LIVE_EVERY tokens)."""
    return Update(u.text, done=True, result=scored, notice=u.notice, stop_reason="cancelled", notes=u.notes,
                  guidance=u.guidance, progress=u.progress, seed=u.seed)


def _user_error(e: Exception) -> Exception | None:
    """An error raised by the code on a replica, not by Ray: the original exception, raised again here (a
    UserError is then shown as its message; a ValueError is a bug, logged by the page), not retried."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, (UserError, ValueError)):
        return cause
    return None
