"""A training run -> llama.cpp GGUF LoRA adapters (plus merged models) and the run's manifest.

    python -m finetune export                          # last epoch of the committed config's run
    python -m finetune export --run finetune/runs/cqa --all-epochs --merge --to models/cqa

Each epoch's peft adapter (`finetune/peft_lora.py`) becomes RUN/gguf/epoch-N.gguf in the format of
`finetune/lora_gguf.py` (what llama.cpp's own converter writes, plus the cqa.base.* keys so the engine
refuses it on another base); `--merge` also writes base + adapter as one GGUF and quantizes it
(`finetune/merge.py`); `--to` installs the last exported epoch where the app loads it. Files that
exist are kept (every write is atomic, so an existing file is whole); `--force` rewrites them.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from assistant import atomic

from . import lora_gguf
from . import merge as merging
from .errors import ExportError  # noqa: F401 - raised here, imported from here by callers
from .files import read_json, sha256, write_json
from .peft_lora import PeftLora
from .train import EPOCHS_DIR, METRICS_FILE, RUN_FILE

log = logging.getLogger(__name__)

GGUF_DIR, MANIFEST_FILE = "gguf", "manifest.json"    # in the run folder
INSTALLED_ADAPTER = "adapter.gguf"                   # in an install folder such as models/cqa


def write_adapter(adapter_dir: Path, base_path: Path, base_name: str, base_sha256: str, out: Path,
                  dtype: str = "f32", permute: bool = True) -> Path:
    """Write the GGUF LoRA adapter for `adapter_dir` (a peft folder) to `out`, atomically."""
    base = lora_gguf.BaseInfo.read(base_path)
    lora = PeftLora.read(adapter_dir)
    cast = lora_gguf.DTYPES[dtype]
    tensors = {name: (a.astype(cast), b.astype(cast))
               for name, (a, b) in lora_gguf.gguf_tensors(lora.pairs, base, permute).items()}
    adapter = lora_gguf.LoraAdapter(arch=base.arch, alpha=float(lora.alpha), name=lora_gguf.adapter_name(base_name),
                                    base={"name": base_name, "sha256": base_sha256, "file": Path(base_path).name},
                                    tensors=tensors)
    return lora_gguf.write(adapter, out)


def epochs_of(run_dir: Path) -> list[int]:
    """Finished epochs of a run (those with a saved adapter), ascending."""
    folder = Path(run_dir) / EPOCHS_DIR
    found = [int(p.name.split("-")[1]) for p in folder.glob("epoch-*")
             if p.is_dir() and p.name.split("-")[1].isdigit() and (p / "adapter_model.safetensors").is_file()]
    return sorted(found)


def export_run(run_dir: Path, epochs: list[int] | None = None, *, dtype: str = "f16", merge: bool = False,
               merge_dtype: str = "f16", quants: tuple[str, ...] = (), to: Path | None = None,
               force: bool = False) -> dict:
    """Export a run's adapters (default: the last epoch) and write RUN/manifest.json; returns the manifest.

    Files that already exist are kept (writes are atomic, so an existing file is complete);
    `force` rewrites them.
    """
    from assistant import catalog

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ExportError(f"{run_dir} is not a training run (no {RUN_FILE}): run `python -m finetune train` first")
    run = read_json(run_dir / RUN_FILE)
    done = epochs_of(run_dir)
    if not done:
        raise ExportError(f"{run_dir} has no finished epoch yet: let `python -m finetune train` finish one")
    wanted = epochs or [done[-1]]
    missing = [e for e in wanted if e not in done]
    if missing:
        raise ExportError(f"{run_dir} has no adapter for epoch(s) {missing}; finished: {done}")
    base = catalog.resolve(run["base"]["name"])
    if base.sha256 != run["base"]["sha256"]:
        raise ExportError(f"{base.path} is not the base this run was trained on (sha256 differs): "
                          f"reinstall it or retrain")
    out_dir = run_dir / GGUF_DIR

    def make(path: Path, build) -> Path:
        if path.exists() and not force:
            log.info("%s exists: kept (use --force to rewrite)", path)
            return path
        log.info("writing %s", path)
        return build(path)

    for e in wanted:
        adapter = run_dir / EPOCHS_DIR / f"epoch-{e}"
        make(out_dir / f"epoch-{e}.gguf",
             lambda p: write_adapter(adapter, base.path, run["base"]["name"], run["base"]["sha256"], p, dtype))
        if merge:
            full = make(out_dir / f"merged-epoch-{e}.{merge_dtype}.gguf",
                        lambda p: merging.merge(base.path, adapter, p, merge_dtype))
            for q in quants:
                make(out_dir / f"merged-epoch-{e}.{q}.gguf", lambda p: merging.quantize(full, p, q))
    metrics = read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else {"epochs": []}
    manifest = build_manifest(run, metrics, run_dir)
    write_json(run_dir / MANIFEST_FILE, manifest)
    if to is not None:
        install(run_dir, manifest, wanted[-1], Path(to))
    return manifest


def build_manifest(run: dict, metrics: dict, run_dir: Path) -> dict:
    from .provenance import versions

    files = {}
    for path in sorted((run_dir / GGUF_DIR).glob("*.gguf")):
        files[path.name] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    return {"made_by": "python -m finetune train + export", "base": run["base"], "data": run["data"],
            "config": run["config"], "device": run["device"], "device_name": run.get("device_name"),
            "threads": run.get("threads"), "started": run.get("started"),
            "wall_time_s": sum(e["seconds"] for e in metrics["epochs"]),
            "epochs": metrics["epochs"], "files": files,
            "checks": {p.name: read_json(p) for p in sorted((run_dir / GGUF_DIR).glob("*.check.json"))},
            "versions": {"train": run["versions"], "export": versions()}}


def install(run_dir: Path, manifest: dict, epoch: int, to: Path) -> Path:
    """Copy epoch N's adapter to TO/adapter.gguf with TO/manifest.json beside it (what the app loads)."""
    src, dst = run_dir / GGUF_DIR / f"epoch-{epoch}.gguf", to / INSTALLED_ADAPTER
    with atomic.atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    write_json(to / MANIFEST_FILE, {**manifest, "adapter": {"epoch": epoch, "file": dst.name,
                                                            "sha256": sha256(dst)}})
    log.info("installed epoch %d as %s", epoch, dst)
    return dst
