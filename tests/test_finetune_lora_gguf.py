"""The GGUF LoRA adapter format (finetune/lora_gguf.py): known answers, a write/read round trip, the shipped
adapters rewritten byte for byte, and finetune/'s import graph without a circle.

    python -m pytest -q tests/test_finetune_lora_gguf.py
"""
from __future__ import annotations

import ast
from pathlib import Path

import gguf
import numpy as np
import pytest

from assistant import adapter_meta, catalog
from assistant.errors import BadAdapter
from finetune import lora_gguf
from finetune.errors import ExportError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "models" / "cqa" / "adapter.gguf", ROOT / "models" / "cqa-passage" / "adapter.gguf"]


def test_permute_rows_makes_rotary_pairs_neighbours_within_each_head():
    assert lora_gguf.permute_rows(np.arange(8), 1).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert lora_gguf.permute_rows(np.arange(8), 2).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    x = np.arange(24).reshape(12, 2)            # 3 heads of 4 rows: whole rows move, columns stay
    assert lora_gguf.permute_rows(x, 3)[:4].tolist() == [[0, 1], [4, 5], [2, 3], [6, 7]]


def test_keys_are_gguf_pys_and_the_engines():
    assert (lora_gguf.KEY_GENERAL_TYPE, lora_gguf.KEY_ADAPTER_TYPE, lora_gguf.KEY_ALPHA) == (
        "general.type", "adapter.type", "adapter.lora.alpha")
    assert (lora_gguf.GENERAL_TYPE, lora_gguf.ADAPTER_TYPE) == ("adapter", "lora")
    assert lora_gguf.BASE_KEYS == {"name": "cqa.base.name", "sha256": "cqa.base.sha256", "file": "cqa.base.file"}
    assert lora_gguf.BASE_KEYS["sha256"] is adapter_meta.KEY_BASE_SHA256     # one place: the engine's module
    assert lora_gguf.tensor_name("blk.3.ffn_down.weight", lora_gguf.LORA_A) == "blk.3.ffn_down.weight.lora_a"
    assert lora_gguf.adapter_name("smollm2-135m") == "CQA LoRA for smollm2-135m"


def _adapter(dtype=np.float16, r=4) -> lora_gguf.LoraAdapter:
    rng = np.random.default_rng(0)
    tensors = {f"blk.{n}.{kind}.weight": (rng.standard_normal((r, 576)).astype(dtype),
                                          rng.standard_normal((rows, r)).astype(dtype))
               for n in (0, 1, 10) for kind, rows in (("attn_q", 576), ("attn_k", 192))}
    return lora_gguf.LoraAdapter("llama", 8.0, lora_gguf.adapter_name("smollm2-135m"),
                                 {"name": "smollm2-135m", "sha256": "ab" * 32, "file": "base.gguf"}, tensors)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_write_then_read_gives_the_same_adapter(tmp_path, dtype):
    a = _adapter(dtype)
    path = lora_gguf.write(a, tmp_path / "a.gguf")
    b = lora_gguf.read(path)
    assert (b.arch, b.alpha, b.name, b.base, b.r) == (a.arch, a.alpha, a.name, a.base, 4)
    assert list(b.tensors) == list(a.tensors)                      # file order is the writer's order
    for name, (x, y) in a.tensors.items():
        assert b.tensors[name][0].dtype == dtype and np.array_equal(b.tensors[name][0], x)
        assert np.array_equal(b.tensors[name][1], y)
    assert adapter_meta.read_adapter_base(path) == a.base           # what the engine reads before loading it
    stored = {t.name: list(t.shape) for t in gguf.GGUFReader(str(path)).tensors}
    assert stored["blk.0.attn_k.weight.lora_a"] == [576, 4] and stored["blk.0.attn_k.weight.lora_b"] == [4, 192]
    assert [p.name for p in tmp_path.iterdir()] == ["a.gguf"]       # atomic: no temp file left behind
    assert lora_gguf.write(b, tmp_path / "b.gguf").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_adapters_read_and_rewrite_byte_for_byte(path, tmp_path):
    a = lora_gguf.read(path)
    assert a.arch == "llama" and a.name == lora_gguf.adapter_name(a.base["name"]) and a.r == 16
    assert a.base == adapter_meta.read_adapter_base(path) and len(a.tensors) == 30 * 7
    assert lora_gguf.write(a, tmp_path / "again.gguf").read_bytes() == path.read_bytes()


def test_read_refuses_what_is_not_a_lora_adapter(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(BadAdapter, match="is not a readable GGUF adapter"):
        lora_gguf.read(junk)
    w = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((2, 2), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(BadAdapter, match=r"is not a LoRA adapter \(general.type 'model'"):
        lora_gguf.read(tmp_path / "model.gguf")


def test_gguf_tensors_names_and_permutes_for_the_real_base():
    base = lora_gguf.BaseInfo.read(catalog.resolve("smollm2-135m").path)
    assert (base.arch, base.n_blocks, base.n_head, base.n_head_kv) == ("llama", 30, 9, 3)
    rng = np.random.default_rng(1)
    pairs = {f"model.layers.2.self_attn.{m}": (rng.standard_normal((4, 576)), rng.standard_normal((rows, 4)))
             for m, rows in (("q_proj", 576), ("k_proj", 192), ("v_proj", 192))}
    out = lora_gguf.gguf_tensors(pairs, base)
    assert list(out) == ["blk.2.attn_k.weight", "blk.2.attn_q.weight", "blk.2.attn_v.weight"]   # by module name
    q, k, v = (pairs[f"model.layers.2.self_attn.{m}_proj"][1] for m in "qkv")
    assert np.array_equal(out["blk.2.attn_q.weight"][1], lora_gguf.permute_rows(q, 9))
    assert np.array_equal(out["blk.2.attn_k.weight"][1], lora_gguf.permute_rows(k, 3))
    assert out["blk.2.attn_v.weight"][1] is v
    assert out["blk.2.attn_q.weight"][1] is not q and lora_gguf.gguf_tensors(pairs, base, permute=False)[
        "blk.2.attn_q.weight"][1] is q
    with pytest.raises(ExportError, match="no GGUF tensor for the adapted module 'model.layers.2.nope'"):
        lora_gguf.gguf_tensors({"model.layers.2.nope": (q, q)}, base)


def finetune_imports() -> dict[str, set[str]]:
    """finetune module -> the finetune modules it imports anywhere in it (top level or inside functions)."""
    folder = ROOT / "finetune"
    mods = {p.stem for p in folder.glob("*.py")}
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("finetune")):
                head = (node.module or "").removeprefix("finetune").lstrip(".").split(".")[0]
                deps |= {head} if head else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("finetune.")}
        graph[path.stem] = (deps & mods) - {path.stem}
    return graph


def test_finetune_imports_have_no_circle():
    graph = finetune_imports()
    assert "lora_gguf" in graph["export"] and "lora_gguf" in graph["merge"] and "export" not in graph["merge"]

    def circle(node, path):
        for dep in sorted(graph[node]):
            if dep in path:
                return path[path.index(dep):] + [dep]
            found = circle(dep, path + [dep])
            if found:
                return found
        return None
    for mod in graph:
        assert circle(mod, [mod]) is None, " -> ".join(circle(mod, [mod]))
