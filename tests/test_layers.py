"""The layers import one way (docs/architecture.md), checked over every module with ``ast``.

Every import counts, the ones inside functions included; imports under ``if TYPE_CHECKING:`` count
for the direction of the layers but not for cycles (they never run). The checker itself is tested
on small trees made here, so that a rule that stopped finding anything would fail too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("naming", "balancers", "backends")

# component -> rank; an import may only go to a lower rank, or stay in its own component; the
# components on top (the facade with the CLI and the demo, and naming.testing) may use each other
RANKS = {"core": 0, "balancers": 1, "backends": 1, "channel": 2, "naming": 3, "testing": 3}
TOP = 3
GRPC_ALLOWED = {"channel", "naming", "testing"}
CORE_MODULES = {"naming.errors", "naming.hookspecs"}


def component(module: str) -> str:
    """The layer component of a module of ours (see RANKS)."""
    if module in CORE_MODULES or module == "naming.core" or module.startswith("naming.core."):
        return "core"
    for sub in ("channel", "testing"):
        if module == f"naming.{sub}" or module.startswith(f"naming.{sub}."):
            return sub
    return module.split(".", 1)[0]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (for `from m import name`: m, or m.name if that is a module)
    names: tuple[str, ...]  # the names taken from it (empty for `import m`)
    typing_only: bool
    line: int


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def _typing_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes that sit under ``if TYPE_CHECKING:``."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    inside.update(id(n) for n in ast.walk(child))
    return inside


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _typing_blocks(tree)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), id(node) in typing_only, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            submodules = [name for name in names if f"{target}.{name}" in known]
            for name in submodules:
                yield Import(module, f"{target}.{name}", (), id(node) in typing_only, node.lineno)
            others = tuple(name for name in names if name not in submodules)
            if others or not submodules:
                yield Import(module, target, others, id(node) in typing_only, node.lineno)


def ours(target: str, known: set[str]) -> str | None:
    """The module of ours that ``target`` names (or sits in), None for a third-party one."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def violations(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    files = module_files(root, packages)
    known = set(files)
    found: list[str] = []
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        home = component(module)
        for imp in imports_of(module, path, known):
            where = f"{path.relative_to(root)}:{imp.line}"
            top = imp.target.split(".", 1)[0]
            if top == "grpc" and home not in GRPC_ALLOWED:
                found.append(f"{where}: {home} imports grpc (only the channel may)")
            target = ours(imp.target, known)
            if target is None:
                continue
            there = component(target)
            if there != home:
                if RANKS[there] > RANKS[home] or RANKS[there] == RANKS[home] < TOP:
                    found.append(
                        f"{where}: {home} imports {imp.target} ({there}): against the layers"
                    )
                private = [p for p in imp.target.split(".") if p.startswith("_")]
                private += [n for n in imp.names if n.startswith("_")]
                if private:
                    found.append(f"{where}: {module} imports private {private} from {imp.target}")
            if not imp.typing_only and target != module:
                graph[module].add(target)
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def test_the_layers_import_one_way_with_no_cycle_and_no_private_name() -> None:
    assert violations(ROOT) == []


def test_every_module_belongs_to_a_known_layer() -> None:
    for module in module_files(ROOT, PACKAGES):
        assert component(module) in RANKS, module


# -- the checker finds what it should ----------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


BASE = {
    "naming/__init__.py": "from .core import Address\n",
    "naming/core/__init__.py": "from ._types import Address\n",
    "naming/core/_types.py": "class Address: ...\n",
    "naming/channel/__init__.py": "import grpc\nfrom balancers import Balancer\n",
    "balancers/__init__.py": "from naming.core import Address\nclass Balancer: ...\n",
    "backends/__init__.py": "",
}


def test_checker_accepts_a_clean_tree(tmp_path: Path) -> None:
    assert violations(_tree(tmp_path, BASE)) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # the core reaching up, even lazily inside a function
        (
            {"naming/core/_types.py": "def f():\n    import balancers\n"},
            "core imports balancers (balancers): against the layers",
        ),
        # a private name of another layer
        (
            {"backends/__init__.py": "from naming.core._types import Address\n"},
            "imports private ['_types']",
        ),
        ({"backends/__init__.py": "from naming.core import _x\n"}, "imports private ['_x']"),
        # backends and balancers are side by side: neither imports the other
        ({"backends/__init__.py": "import balancers\n"}, "backends imports balancers"),
        # grpc outside the channel
        ({"balancers/__init__.py": "import grpc\n"}, "balancers imports grpc"),
        # a cycle inside one layer, through a relative import in a function
        (
            {
                "balancers/_a.py": "from . import _b\n",
                "balancers/_b.py": "def f():\n    from ._a import x\n",
            },
            "import cycle: balancers._a -> balancers._b",
        ),
    ],
)
def test_checker_reports(tmp_path: Path, extra: dict[str, str], expected: str) -> None:
    found = violations(_tree(tmp_path, {**BASE, **extra}))
    assert any(expected in line for line in found), found


def test_checker_ignores_typing_only_imports_for_cycles(tmp_path: Path) -> None:
    extra = {
        "balancers/_a.py": "from . import _b\n",
        "balancers/_b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import x\n"
        ),
    }
    assert violations(_tree(tmp_path, {**BASE, **extra})) == []
