"""The package's shape, read from its source with ``ast`` (no import needed, so it cannot be fooled
by lazy imports): no import circles, imports only downwards through the layers, a torch-free
schedule, a small package root, short modules, and no module re-exporting names it does not define.

Every ``import`` counts, also inside functions and ``TYPE_CHECKING`` blocks: a circle hidden in a
function is still a circle for the reader. The layers, bottom to top, follow the data flow
(docs/architecture.md): schedule -> sampling -> batchnorm -> data / models -> callback -> cli.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lightning_multigrid"
NAME = "lightning_multigrid"

#: Layer of each subpackage / root module; a module may import its own layer or lower ones.
LAYERS = {
    "schedule": 0,
    "sampling": 1,
    "adapters": 1,  # the dataset tiers; at the root because the README names this path
    "batchnorm": 2,
    "namespace": 2,  # the two Lightning namespaces, used by data, models and callback
    "data": 3,
    "models": 3,
    "callback": 4,
    "cli": 5,
    "lightning": 6,  # the public facades re-export from every layer
    "pytorch_lightning": 6,
    "": 6,  # lightning_multigrid/__init__.py
}
#: Upward imports kept only so that a public import path keeps working; each is lazy
#: (inside a package ``__getattr__``), so importing the lower layer never runs the higher one.
PUBLIC_PATH_ALIASES = {
    # lightning_multigrid.data.make_synthetic_main: the make-synthetic command, now in cli/.
    ("lightning_multigrid.data", "lightning_multigrid.cli.make_synthetic"),
}
MAX_ROOT_MODULES = 8
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """``(imported module, names)`` of every import statement of ``module``, relative ones resolved."""
    path = MODULES[module]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((_resolve(module, path.name == "__init__.py", node), [a.name for a in node.names]))
    return found


def imports_of(module: str) -> set[str]:
    """The package modules ``module`` imports anywhere in its source (``from p import m`` -> ``p.m``)."""
    found: set[str] = set()
    for target, names in _imports(module):
        found.update({f"{target}.{n}" if f"{target}.{n}" in MODULES else target for n in names} or {target})
    return {name for name in found if name.split(".")[0] == NAME and name != module}


def all_imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (``torch``, ``numpy``, package modules, ...)."""
    return {target for target, _ in _imports(module)}


GRAPH = {module: imports_of(module) for module in MODULES}


def layer_of(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def test_every_module_has_a_layer():
    assert {m.split(".")[1] for m in MODULES if "." in m} <= set(LAYERS)


def test_imports_resolve_to_modules():
    """The graph is only as good as its edges: each import names a module that exists."""
    missing = {(m, t) for m, targets in GRAPH.items() for t in targets if t not in MODULES}
    assert not missing


def test_no_import_circles():
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not circles


def test_imports_go_down_the_layers():
    upward = sorted(
        (m, t) for m, targets in GRAPH.items() for t in targets
        if layer_of(t) > layer_of(m) and (m, t) not in PUBLIC_PATH_ALIASES
    )
    assert not upward


def test_public_path_aliases_are_lazy():
    """Each allowed upward import sits inside the package's ``__getattr__``, never at import time."""
    for module, target in PUBLIC_PATH_ALIASES:
        tree = ast.parse(MODULES[module].read_text())
        lazy = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"]
        assert lazy, module
        inside = {n for f in lazy for n in ast.walk(f) if isinstance(n, ast.ImportFrom)}
        top = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n not in inside]
        assert target.rsplit(".", 1)[-1] not in {n.module.rsplit(".", 1)[-1] for n in top if n.module}


def test_schedule_imports_no_torch():
    schedule = [m for m in MODULES if m == f"{NAME}.schedule" or m.startswith(f"{NAME}.schedule.")]
    assert len(schedule) >= 5
    heavy = {m: sorted(n for n in all_imports_of(m) if n.split(".")[0] in {"torch", "numpy", "lightning", "pytorch_lightning"})
             for m in schedule}
    assert not {m: n for m, n in heavy.items() if n}
    # The same, observed: importing the schedule (and its command) loads no torch.
    code = ("import sys, importlib\n"
            f"for m in {sorted(schedule)!r} + ['{NAME}.cli.commands']:\n"
            "    importlib.import_module(m)\n"
            "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if k.startswith('torch'))[:5]\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_package_root_is_small():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


@pytest.mark.parametrize("path", sorted([*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_short(path: Path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _exported(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def test_no_module_reexports_what_it_does_not_define():
    """One home per name: only package ``__init__`` files gather names from elsewhere."""
    foreign = {}
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        names = set(_exported(tree)) - _defined_names(tree)
        if names:
            foreign[module] = sorted(names)
    assert not foreign
