"""A trained peft adapter -> a llama.cpp GGUF LoRA adapter (plus the run's manifest).

    python -m finetune export                          # last epoch of the committed config's run
    python -m finetune export --run finetune/runs/cqa --all-epochs --merge --to models/cqa

The adapter GGUF is what llama.cpp's own converter would write: general.type "adapter",
adapter.type "lora", adapter.lora.alpha, tensors blk.N.<name>.weight.lora_a / .lora_b shaped as
peft's lora_A (r x in) / lora_B (out x r), names from gguf-py's tensor-name map, plus our
cqa.base.* keys (assistant/adapter_meta.py) so the engine refuses it on another base.

For llama-architecture models the HF->GGUF conversion permutes the rows of q_proj and k_proj
(rotary pairs (i, i + d/2) of each head become adjacent rows) and transformers' GGUF loader undoes
it, so the adapter was trained in HF row order: lora_B of q/k gets the same permutation here.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant import adapter_meta

from .files import finish_gguf, read_json, sha256, write_json

log = logging.getLogger(__name__)

QK_PERMUTED_ARCHS = {"llama"}   # archs whose convert_hf_to_gguf permutes q/k rows (transformers undoes it)
PEFT_PREFIX = "base_model.model."
ADAPTER_DTYPES = {"f16": np.float16, "f32": np.float32}


class ExportError(RuntimeError):
    """An export that cannot be made; the message says what to do."""


def permute_rows(x: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k projection (or its lora_B) from HF order to llama.cpp's GGUF order.

    Within each head of d rows, row i and row i + d/2 (a rotary pair) become neighbours:

    >>> permute_rows(np.arange(8), 1).tolist()
    [0, 4, 1, 5, 2, 6, 3, 7]
    >>> permute_rows(np.arange(8), 2).tolist()
    [0, 2, 1, 3, 4, 6, 5, 7]
    """
    return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


@dataclass(frozen=True)
class BaseInfo:
    path: Path
    arch: str
    n_blocks: int
    n_head: int
    n_head_kv: int

    @classmethod
    @functools.lru_cache(maxsize=4)
    def read(cls, path: Path) -> "BaseInfo":
        from gguf import GGUFReader

        r = GGUFReader(str(path), "r")

        def get(key):
            f = r.get_field(key)
            if f is None:
                raise ExportError(f"{path} lacks the GGUF key {key}: is it a base model GGUF?")
            return f.contents()
        arch = get("general.architecture")
        head = int(get(f"{arch}.attention.head_count"))
        kv = r.get_field(f"{arch}.attention.head_count_kv")
        return cls(Path(path), arch, int(get(f"{arch}.block_count")), head, int(kv.contents()) if kv else head)

    def name_map(self):
        import gguf

        archs = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
        if self.arch not in archs:
            raise ExportError(f"gguf-py does not know the architecture {self.arch!r}: upgrade the gguf package")
        return gguf.get_tensor_name_map(archs[self.arch], self.n_blocks)


@dataclass(frozen=True)
class PeftLora:
    r: int
    scale: float                                       # peft's scaling: alpha / r (or alpha / sqrt(r))
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]   # HF module name -> (lora_A r x in, lora_B out x r)

    @property
    def alpha(self) -> float:
        """The alpha llama.cpp needs to apply the same scale (it uses alpha / r)."""
        return self.scale * self.r

    @classmethod
    def read(cls, folder: Path) -> "PeftLora":
        from safetensors.numpy import load_file

        cfg_path, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
        if not (cfg_path.is_file() and weights.is_file()):
            raise ExportError(f"{folder} is not a peft adapter folder (needs adapter_config.json and "
                              "adapter_model.safetensors): run `python -m finetune train` first")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
            raise ExportError(f"{folder}: per-module ranks or alphas are not supported by this export")
        r = int(cfg["r"])
        scale = cfg["lora_alpha"] / (math.sqrt(r) if cfg.get("use_rslora") else r)
        parts: dict[str, dict] = {}
        for key, value in load_file(str(weights)).items():
            for part in ("lora_A", "lora_B"):
                tail = f".{part}.weight"
                if key.endswith(tail):
                    module = key[: -len(tail)].removeprefix(PEFT_PREFIX)
                    parts.setdefault(module, {})[part] = value.astype(np.float32)
                    break
            else:
                raise ExportError(f"{folder}: unexpected tensor {key} (only LoRA A/B matrices can be exported)")
        pairs = {m: (p["lora_A"], p["lora_B"]) for m, p in parts.items()}
        return cls(r, scale, pairs)


def gguf_tensors(lora: PeftLora, base: BaseInfo, permute: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """GGUF base tensor name (blk.N.attn_q.weight) -> (lora_a, lora_b), lora_b rows in GGUF order.

    `permute=False` leaves q/k rows in HF order: wrong, and kept only so a test can show it matters.
    """
    import gguf

    names = base.name_map()
    permuted = permute and base.arch in QK_PERMUTED_ARCHS
    out = {}
    for module, (a, b) in sorted(lora.pairs.items()):
        found = names.get_type_and_name(module)
        if found is None:
            raise ExportError(f"no GGUF tensor for the adapted module {module!r} in gguf-py's map for {base.arch}")
        kind, name = found
        if permuted and kind == gguf.MODEL_TENSOR.ATTN_Q:
            b = permute_rows(b, base.n_head)
        elif permuted and kind == gguf.MODEL_TENSOR.ATTN_K:
            b = permute_rows(b, base.n_head_kv)
        out[f"{name}.weight"] = (a, b)
    return out


def write_adapter(adapter_dir: Path, base_path: Path, base_name: str, base_sha256: str, out: Path,
                  dtype: str = "f32", permute: bool = True) -> Path:
    """Write the GGUF LoRA adapter for `adapter_dir` (a peft folder) to `out`, atomically."""
    import gguf

    base = BaseInfo.read(base_path)
    lora = PeftLora.read(adapter_dir)
    tensors = gguf_tensors(lora, base, permute)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), base.arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora.alpha))
    w.add_name(f"CQA LoRA for {base_name}")
    w.add_string(adapter_meta.KEY_BASE_NAME, base_name)
    w.add_string(adapter_meta.KEY_BASE_SHA256, base_sha256)
    w.add_string(adapter_meta.KEY_BASE_FILE, Path(base_path).name)
    for name, (a, b) in tensors.items():
        w.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=ADAPTER_DTYPES[dtype]))
        w.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=ADAPTER_DTYPES[dtype]))
    return finish_gguf(w, tmp, out)


# ---- a training run -> GGUF files + manifest ---------------------------------------------------
def epochs_of(run_dir: Path) -> list[int]:
    """Finished epochs of a run (those with a saved adapter), ascending."""
    folder = run_dir / "epochs"
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

    from . import merge as merging
    from .train import METRICS_FILE, RUN_FILE

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
    out_dir = run_dir / "gguf"

    def make(path: Path, build) -> Path:
        if path.exists() and not force:
            log.info("%s exists: kept (use --force to rewrite)", path)
            return path
        log.info("writing %s", path)
        return build(path)

    for e in wanted:
        adapter = run_dir / "epochs" / f"epoch-{e}"
        make(out_dir / f"epoch-{e}.gguf",
             lambda p: write_adapter(adapter, base.path, run["base"]["name"], run["base"]["sha256"], p, dtype))
        if merge:
            full = make(out_dir / f"merged-epoch-{e}.{merge_dtype}.gguf",
                        lambda p: merging.merge(base.path, adapter, p, merge_dtype))
            for q in quants:
                make(out_dir / f"merged-epoch-{e}.{q}.gguf", lambda p: merging.quantize(full, p, q))
    metrics = read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else {"epochs": []}
    manifest = build_manifest(run, metrics, run_dir)
    write_json(run_dir / "manifest.json", manifest)
    if to is not None:
        install(run_dir, manifest, wanted[-1], Path(to))
    return manifest


def build_manifest(run: dict, metrics: dict, run_dir: Path) -> dict:
    from .provenance import versions

    files = {}
    for path in sorted((run_dir / "gguf").glob("*.gguf")):
        files[path.name] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    return {"made_by": "python -m finetune train + export", "base": run["base"], "data": run["data"],
            "config": run["config"], "device": run["device"], "device_name": run.get("device_name"),
            "threads": run.get("threads"), "started": run.get("started"),
            "wall_time_s": sum(e["seconds"] for e in metrics["epochs"]),
            "epochs": metrics["epochs"], "files": files,
            "checks": {p.name: read_json(p) for p in sorted((run_dir / "gguf").glob("*.check.json"))},
            "versions": {"train": run["versions"], "export": versions()}}


def install(run_dir: Path, manifest: dict, epoch: int, to: Path) -> Path:
    """Copy epoch N's adapter to TO/adapter.gguf with TO/manifest.json beside it (what the app loads)."""
    import shutil

    to.mkdir(parents=True, exist_ok=True)
    src, dst = run_dir / "gguf" / f"epoch-{epoch}.gguf", to / "adapter.gguf"
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    write_json(to / "manifest.json", {**manifest, "adapter": {"epoch": epoch, "file": dst.name,
                                                               "sha256": sha256(dst)}})
    log.info("installed epoch %d as %s", epoch, dst)
    return dst
