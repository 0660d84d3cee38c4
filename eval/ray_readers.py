"""`python -m eval pairs --ray auto`: the texts scored by Ray actors, one per CPU of the cluster, each holding
the variant's engine with one llama.cpp thread; the driver keeps the cache and writes the report.

    python -m eval pairs --ray auto --adapter cqa=models/cqa/adapter.gguf --out eval/out/pairs-ray

The entry point (`eval/__main__.py`) hands `RayReaders` down in place of `eval.readers.LocalReaders`; nothing
else in eval/ knows about Ray. Each actor runs the same EngineReader as a local run with `--threads 1`, so the
report's numbers equal that run's (the thread count changes llama.cpp's floating-point sums, so compare with
--threads 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .readers import EngineReader


class _Scorer:
    """One actor: a variant's engine and the app's scorer."""

    def __init__(self, model, adapter, template):
        from assistant.engine import Engine

        self.reader = EngineReader(Engine.load(model, lora_path=adapter, n_threads=1), template)

    def score(self, brief, context, texts):
        return self.reader.score_texts(brief, context, texts)


class RayReader:
    def __init__(self, model: str, adapter: str | None, template: str, address: str):
        import ray
        from ray.util import ActorPool

        from assistant.ray_backend import NAMESPACE, ROOT
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": str(ROOT)}}
            try:
                ray.init(address=address, namespace=NAMESPACE, runtime_env=env, log_to_driver=False)
            except (ConnectionError, RuntimeError):
                if address != "auto":
                    raise
                ray.init(namespace=NAMESPACE, runtime_env=env, log_to_driver=False, include_dashboard=False)
        # one actor per CPU of the cluster; actors wait for a CPU that other work (or the last variant's
        # actors, being killed) still holds
        n = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        actor = ray.remote(num_cpus=1)(_Scorer)
        self.actors = [actor.remote(model, adapter, template) for _ in range(n)]
        self.pool = ActorPool(self.actors)

    def score_many(self, work: list[tuple], tick: Callable) -> list[list[dict]]:
        """Every (brief, context, texts) scored on the actors, results in the order of `work`."""
        out = []
        for r in self.pool.map(lambda a, item: a.score.remote(*item), work):
            out.append(r)
            tick(1)
        return out

    def score_texts(self, brief, context: str | None, texts: list[str]) -> list[dict]:
        return self.score_many([(brief, context, texts)], lambda n: None)[0]

    def close(self) -> None:
        import ray
        for a in self.actors:
            ray.kill(a)


@dataclass(frozen=True)
class RayReaders:
    """Readers on the Ray cluster at `address` ("auto": the running one, else a local one started here)."""
    address: str = "auto"
    n_threads: int | None = 1      # llama.cpp threads per actor

    def open(self, model: str, adapter: str | None, template: str) -> RayReader:
        return RayReader(model, adapter, template, self.address)
