"""`python -m eval pairs --ray auto`: the pairs' texts scored by Ray actors, one per CPU of the cluster, each
holding the variant's engine with one llama.cpp thread; the driver keeps the cache and writes the report.

    python -m eval pairs --ray auto --adapter cqa=models/cqa/adapter.gguf --out eval/out/pairs-ray

Each actor runs the same EngineReader as a local run with `--threads 1`, so the report's numbers equal that
run's (the thread count changes llama.cpp's floating-point sums, so compare with --threads 1).
"""
from __future__ import annotations

from typing import Callable


class _Scorer:
    """One actor: a variant's engine and the app's scorer."""

    def __init__(self, model, adapter, template):
        from assistant.engine import Engine

        from .runner import EngineReader
        self.reader = EngineReader(Engine.load(model, lora_path=adapter, n_threads=1), template)

    def score(self, context, texts):
        return self.reader.score_texts(context, texts)


class RayPairReader:
    def __init__(self, v, template: str, address: str):
        import ray
        from ray.util import ActorPool

        from assistant.ray_backend import ROOT, NAMESPACE
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
        self.actors = [actor.remote(v.model, v.adapter_path, template) for _ in range(n)]
        self.pool = ActorPool(self.actors)

    def score_many(self, work: list[tuple[str, list[str]]], tick: Callable) -> list[list[dict]]:
        """Every (context, texts) scored on the actors, results in the order of `work`."""
        out = []
        for r in self.pool.map(lambda a, item: a.score.remote(*item), work):
            out.append(r)
            tick(1)
        return out

    def score_texts(self, context: str, texts: list[str]) -> list[dict]:
        return self.score_many([(context, texts)], lambda n: None)[0]

    def close(self) -> None:
        import ray
        for a in self.actors:
            ray.kill(a)


def ray_reader_factory(template: str, address: str):
    def open_reader(v) -> RayPairReader:
        return RayPairReader(v, template, address)
    return open_reader
