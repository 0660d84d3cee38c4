"""eval/'s architecture, checked from its import statements: no import circle, the environment read at the
entry point only, Ray chosen there only, and no module using another's private (underscore) names.

    python -m pytest -q tests/test_eval_layout.py
"""
from __future__ import annotations

import ast
from pathlib import Path

EVAL = Path(__file__).resolve().parent.parent / "eval"
MODULES = {p.stem: p for p in EVAL.glob("*.py")}
ENTRY = "__main__"


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"))


def _eval_imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(eval module imported, names taken from it) for every import statement, at any depth (lazy ones too)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").split(".")[0] == "eval"):
            module = node.module if node.level == 1 else (node.module or "").partition(".")[2]
            if module:
                out.append((module.split(".")[0], [a.name for a in node.names]))
            else:                                   # from . import grid, stats
                out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1], []) for a in node.names if a.name.startswith("eval.")]
    return [(m, names) for m, names in out if m in MODULES]


def graph() -> dict[str, set[str]]:
    return {name: {m for m, _ in _eval_imports(_tree(name))} - {name} for name in MODULES}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the circle it closes.

    >>> cycles({"a": {"b"}, "b": {"a"}, "c": set()})
    [['a', 'b', 'a']]
    """
    found, state = [], {}

    def visit(n, stack):
        state[n] = "open"
        stack.append(n)
        for d in sorted(g[n]):
            if state.get(d) == "open":
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n, [])
    return found


def test_cycle_finder_example():
    import doctest
    import sys
    assert doctest.testmod(sys.modules[__name__]).failed == 0
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle_in_eval():
    assert cycles(graph()) == []


def test_only_the_entry_point_reads_the_environment():
    readers = [name for name in MODULES if name != ENTRY and any(
        isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv") for n in ast.walk(_tree(name)))]
    assert readers == []


def test_only_the_entry_point_chooses_ray():
    g = graph()
    assert [name for name, deps in g.items() if "ray_readers" in deps] == [ENTRY]


def test_no_module_uses_another_modules_private_names():
    bad = []
    for name in MODULES:
        tree = _tree(name)
        imported = _eval_imports(tree)
        bad += [f"{name}: from {m} import {n}" for m, names in imported for n in names if n.startswith("_")]
        aliases = {m for m, names in imported if not names}          # `from . import report as rep`: rep too
        aliases |= {a.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
                    and not node.module for a in node.names if a.asname}
        bad += [f"{name}: {n.value.id}.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id in aliases and n.attr.startswith("_")]
    assert bad == []
