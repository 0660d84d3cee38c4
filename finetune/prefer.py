"""`python -m finetune prefer`: the judge teaches the writer (issue 21). Ordered stages, each safe to re-run.

    python -m finetune prefer --config finetune/configs/prefer-dpo.toml            # every stage
    python -m finetune prefer --config finetune/configs/prefer-rft.toml --stage train,export,watch

1. briefs: the training briefs (`prefer_briefs`), refused when one comes close to an evaluation brief or pair;
2. judge: the best judge by the pair evaluation, by the rule in `finetune/judge.py`;
3. sample: N drafts per brief from the starting writer, each scored by the judge (`prefer_sample`, cached);
4. pairs: the guard filter, chosen and rejected drafts (`prefer_pairs`), written to OUT/data/;
5. train: DPO or rejection-sampling fine-tuning on top of the starting adapter (`prefer_train`);
6. export: OUT/gguf/epoch-N.gguf (a llama.cpp adapter like the others) and OUT/manifest.json;
7. watch: drafts of the trained writer on the same briefs, scored by the same judge: reward and guards per
   round (OUT/report.json, report.md) — if the reward rises while the outside readers of the grid do not
   follow, the writer learned the judge, not the craft.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from assistant import atomic

from . import prefer_briefs, prefer_pairs, prefer_sample, prefer_train
from .errors import ConfigError
from .files import read_json, sha256, write_json
from .judge import choose_judge
from .prefer_config import PreferConfig

log = logging.getLogger(__name__)

STAGES = ("briefs", "judge", "sample", "pairs", "train", "export", "watch")
DATA_DIR, GGUF_DIR, MANIFEST, REPORT = "data", "gguf", "manifest.json", "report.json"
REWARD = ("assistant.ranking.rank_score of the judge's /score of the passage (assistant.writer.score): "
          "I over uncopied tokens per token of the budget, bits")


class Engines:
    """The writer's engine (base + starting adapter) and the judge's variant of it, loaded on first use."""

    def __init__(self, cfg: PreferConfig, judge):
        self.cfg, self.judge, self._writer, self._judge = cfg, judge, None, None

    def writer(self):
        if self._writer is None:
            from assistant.engine import Engine
            self._writer = Engine.load(self.cfg.base, lora_path=self.cfg.start_adapter, n_threads=self.cfg.threads or None,
                                       weights=weights_of(self.cfg))
        return self._writer

    def judge_engine(self):
        if self._judge is None:
            same = self.judge.adapter and self.judge.adapter_sha256 == sha256(self.cfg.start_adapter)
            self._judge = self.writer() if same else self.writer().variant(self.judge.adapter)
        return self._judge

    def close(self):
        if self._writer is not None:
            self._writer.close()


def weights_of(cfg: PreferConfig) -> str:
    """The weights writer and judge run on: cfg.weights, "served" being the app's choice for this CPU."""
    if cfg.weights != "served":
        return cfg.weights
    from assistant import defaults
    return defaults.served_weights(cfg.base)


def sampler_for(cfg: PreferConfig, seed: int | None = None):
    """The grid's sampler: its temperature and budget, the app's other settings (top-p 0.95, top-k 40, ...)."""
    from assistant.sampler import Sampler
    return Sampler(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed if seed is None else seed)


def load_briefs(cfg: PreferConfig) -> tuple[list, dict]:
    """The training briefs (first limit_briefs) and the audit: spread and disjointness of *all* of them."""
    briefs = prefer_briefs.load_training_briefs(cfg.corpus, cfg.briefs)
    disjoint = prefer_briefs.disjointness(briefs, cfg.eval_briefs, cfg.eval_pairs)
    if disjoint["problems"]:
        raise ConfigError(f"{len(disjoint['problems'])} training brief(s) too close to the evaluation sets: "
                          + "; ".join(disjoint["problems"][:5]))
    audit = {"spread": prefer_briefs.spread(briefs), "disjointness": disjoint,
             "files": {f: sha256(f) for f in ([cfg.corpus] if cfg.corpus else []) + list(cfg.briefs)}}
    return (briefs[: cfg.limit_briefs] if cfg.limit_briefs else briefs), audit


def _write_jsonl(path: Path, rows) -> None:
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def run(cfg: PreferConfig, stages=STAGES, progress: bool = True, loaded=None) -> dict:
    """Run `stages` (in STAGES order; the early ones are cheap and always run when a later one needs them).
    `loaded`: a `(model, tokenizer, resolved)` base from `model.load_base` for training (tests reuse one)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}: choose from {', '.join(STAGES)}")
    last = max(STAGES.index(s) for s in stages)
    out, t0 = Path(cfg.out_dir), time.time()
    briefs, audit = load_briefs(cfg)
    result = {"audit": audit, "n_briefs": len(briefs)}
    if last < STAGES.index("judge"):
        return result
    judge = choose_judge(read_json(cfg.judge_report))
    result["judge"] = judge.to_json()
    if last < STAGES.index("sample"):
        return result
    engines = Engines(cfg, judge)
    try:
        cache = prefer_sample.Cache(cfg.samples)
        start_sha, judge_sha = sha256(cfg.start_adapter), judge.adapter_sha256 or "base"
        drafts = prefer_sample.sample(briefs, engines.writer, engines.judge_engine, sampler_for(cfg), cfg.n_drafts,
                                      cfg.template, cache, start_sha, judge_sha, progress, weights_of(cfg))
        result["seconds_sample"] = time.time() - t0
        if last < STAGES.index("pairs"):
            return result
        by_id = {b.id: b.brief for b in briefs}
        reference = prefer_pairs.guard_reference(read_json(cfg.grid_report), cfg.guard_reference)
        data = prefer_pairs.build(drafts, {b.id: b.brief.text() for b in briefs}, reference, cfg.margin)
        files = _write_data(out, data)
        write_json(out / DATA_DIR / "briefs-audit.json", {**audit, "judge": judge.to_json(), "counts": data["counts"]})
        result.update(counts=data["counts"], data_files=files, guard_reference=reference)
        log.info("pairs: %s", data["counts"])
        if last < STAGES.index("train"):
            return result
        metrics = prefer_train.train(cfg, data, by_id, progress, loaded,
                                     files["pairs.jsonl" if cfg.recipe == "dpo" else "chosen.jsonl"])
        result["metrics"] = metrics
        if last < STAGES.index("export"):
            return result
        gguf = _export(cfg, out)
        manifest = build_manifest(cfg, result, judge, gguf, sum(e["seconds"] for e in metrics["epochs"]))
        if (out / MANIFEST).is_file():
            manifest = keep_training_record(read_json(out / MANIFEST), manifest)
        write_json(out / MANIFEST, manifest)
        result["gguf"] = str(gguf)
        if last < STAGES.index("watch"):
            _install(cfg, out, gguf, manifest)
            return result
        report = watch(cfg, briefs, drafts, engines, gguf, judge_sha, reference, cache, data, progress)
        write_json(out / REPORT, report)
        atomic.write_text(out / "report.md", report_md(report))
        manifest["watch"] = report["rounds"]
        manifest["watch_run"] = {"threads": cfg.threads, "drafts_per_brief": cfg.watch_drafts,
                                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "samples_sha256_after": sha256(cfg.samples)}
        write_json(out / MANIFEST, manifest)
        _install(cfg, out, gguf, manifest)
        result["watch"] = report
        return result
    finally:
        engines.close()


def _write_data(out: Path, data: dict) -> dict:
    """OUT/data/drafts.jsonl (every checked draft), pairs.jsonl, chosen.jsonl; returns {name: sha256}."""
    d = out / DATA_DIR
    _write_jsonl(d / "drafts.jsonl", [x for ds in data["checked"].values() for x in ds])
    _write_jsonl(d / "pairs.jsonl", data["pairs"])
    _write_jsonl(d / "chosen.jsonl", data["chosen"])
    return {p.name: sha256(p) for p in sorted(d.glob("*.jsonl"))}


def _export(cfg: PreferConfig, out: Path) -> Path:
    from assistant import catalog

    from .export import write_adapter

    target = out / GGUF_DIR / f"epoch-{cfg.epochs}.gguf"
    base = catalog.resolve(cfg.base)
    return write_adapter(out / prefer_train.EPOCHS_DIR / f"epoch-{cfg.epochs}", base.path, cfg.base, base.sha256,
                         target, "f16")


def build_manifest(cfg: PreferConfig, result: dict, judge, gguf: Path, seconds: float) -> dict:
    from assistant import catalog

    from .provenance import device_name, versions

    base = catalog.resolve(cfg.base)
    device = "cuda" if cfg.device == "cuda" else ("cpu" if cfg.device == "cpu" else _auto_device())
    return {"made_by": "python -m finetune prefer", "recipe": cfg.recipe, "round": cfg.round,
            "base": {"name": base.name, "file": base.path.name, "sha256": base.sha256},
            "start_adapter": {"path": cfg.start_adapter, "sha256": sha256(cfg.start_adapter)},
            "judge": judge.to_json(), "reward": REWARD, "sampled_on_weights": weights_of(cfg), "guards": {"reference": result["guard_reference"],
                                                                     "setting": cfg.guard_reference,
                                                                     "grid_report": cfg.grid_report},
            "data": {"briefs": result["audit"]["files"], "n_briefs": result["n_briefs"],
                     "samples": {"path": cfg.samples, "sha256": sha256(cfg.samples)}, "files": result["data_files"]},
            "pairs": result["counts"], "beta": cfg.beta if cfg.recipe == "dpo" else None, "config": cfg.to_dict(),
            "train": result["metrics"], "wall_time_s": seconds, "device": device, "device_name": device_name(device),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(),
            "files": {gguf.name: {"sha256": sha256(gguf), "bytes": gguf.stat().st_size}}}


# what a manifest says about how its adapter was trained: kept when a later run finds the same adapter (training
# skipped, e.g. to run the watch), so that the threads, the sample file's hash and the time stay the training's
TRAINING_RECORD = ("data", "config", "wall_time_s", "device", "device_name", "finished", "versions")


def keep_training_record(previous: dict, new: dict) -> dict:
    """`new` with `previous`'s training record when both describe the same trained adapter (same training log,
    same GGUF); otherwise `new` as it is.

    >>> old = {"train": {"loss": 1}, "files": {"a.gguf": {"sha256": "x"}}, "config": {"threads": 1}, "finished": "t0"}
    >>> keep_training_record(old, {**old, "config": {"threads": 2}, "finished": "t1"})["config"]
    {'threads': 1}
    >>> keep_training_record(old, {**old, "train": {"loss": 2}, "finished": "t1"})["finished"]
    't1'
    """
    same = previous.get("train") == new.get("train") and previous.get("files") == new.get("files")
    return {**new, **{k: previous[k] for k in TRAINING_RECORD if k in previous}} if same else new


def _auto_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _install(cfg: PreferConfig, out: Path, gguf: Path, manifest: dict) -> None:
    if cfg.install_to:
        from .export import install
        install(out, manifest, cfg.epochs, Path(cfg.install_to))


def watch(cfg, briefs, drafts, engines, gguf: Path, judge_sha: str, reference, cache, data, progress) -> dict:
    """Round 0 (the starting writer's first watch_drafts seeds) against round 1 (the trained writer, same seeds,
    same judge): mean reward and guard measures over every draft, the passing ones and round 0's chosen."""
    n = cfg.watch_drafts
    texts = {b.id: b.brief.text() for b in briefs}
    first = {b: [d for d in ds if d["seed"] < cfg.seed + n] for b, ds in drafts.items()}
    rounds = {"0": prefer_pairs.watch({b: prefer_pairs.check_drafts(ds, texts[b], reference) for b, ds in first.items()}),
              "0 chosen (training targets)": prefer_pairs.watch(data["checked"], data["picks"])["chosen"]}
    if n >= 2:
        trained = engines.writer().variant(gguf)
        new = prefer_sample.sample(briefs, lambda: trained, engines.judge_engine, sampler_for(cfg), n, cfg.template,
                                   cache, sha256(gguf), judge_sha, progress, weights_of(cfg))
        rounds["1"] = prefer_pairs.watch({b: prefer_pairs.check_drafts(ds, texts[b], reference) for b, ds in new.items()})
    return {"recipe": cfg.recipe, "round": cfg.round, "drafts_per_brief": n, "n_briefs": len(briefs), "rounds": rounds,
            "note": "reward: the judge's; outside readers: `python -m eval grid` on the held-out briefs (README)"}


def report_md(report: dict) -> str:
    cols = prefer_pairs.WATCHED
    lines = [f"# Reward-hacking watch ({report['recipe']})", "",
             f"{report['n_briefs']} training briefs, {report['drafts_per_brief']} drafts each per round; the judge's "
             "reward (bits per budget token) beside the guards' measures. A reward that rises while brief overlap "
             "rises, or length, distinct-2 fall, is the judge being gamed.", "",
             "| round | drafts | passing | " + " | ".join(cols) + " |", "|---|---:|---:|" + "---:|" * len(cols)]
    for name, r in report["rounds"].items():
        g = r.get("all", r)
        vals = " | ".join("–" if g.get(c) is None else f"{g[c]:.3f}" for c in cols)
        lines.append(f"| {name} | {r.get('n_drafts', g.get('n'))} | "
                     f"{'–' if 'share_passing' not in r else format(r['share_passing'], '.0%')} | {vals} |")
    return "\n".join(lines + ["", report["note"]]) + "\n"
