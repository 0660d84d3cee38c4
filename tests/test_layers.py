"""The house's shape, read from its import statements (including imports inside functions): no import
circle anywhere, and no arrow that runs back up the layers: assistant/ (the core) imports nothing from
finetune/, eval/, page/ or app; finetune/ and eval/ never import the page; page/ never imports app.py."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "finetune", "eval", "page")
ALLOWED = {   # layer -> the layers it may import
    "assistant": {"assistant"},
    "finetune": {"assistant", "finetune"},
    "eval": {"assistant", "finetune", "eval"},
    "page": {"assistant", "finetune", "page"},
    "app": {"assistant", "page"},
}
MAX_LINES = 350


def _modules() -> dict[str, Path]:
    mods = {"app": ROOT / "app.py"}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).glob("*.py"):
            mods[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    pkg = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(n, stack):
        state[n] = 1
        for m in sorted(g[n]):
            if m.split(".")[0] in PACKAGES and m not in g:   # a package's __init__ without a file
                continue
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_no_arrow_runs_up_the_layers():
    wrong = [f"{a} imports {b}" for a, deps in graph().items() for b in deps
             if b.split(".")[0] not in ALLOWED[a.split(".")[0]]]
    assert not wrong, wrong


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long and len((ROOT / "app.py").read_text().splitlines()) <= 200, long


def test_every_design_reference_points_to_a_file_that_exists():
    assert (ROOT / "docs" / "design.md").is_file()
    texts = [p.read_text(encoding="utf-8") for p in [*_modules().values(), *ROOT.glob("tests/*.py"),
                                                    *ROOT.glob("bench/*.py"), ROOT / "README.md"]]
    old = ("DESIGN" + ".md", "DESIGN" + " §")     # the notes that never were in the repository
    stale = [t for t in texts if any(o in t for o in old)]
    assert not stale, [t.splitlines()[0] for t in stale]
