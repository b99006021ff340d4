"""The import contract: the layers of ``monitor/`` import downwards only, and no module takes
part in an import circle. Read from the source with ``ast`` (every import, function-level and
``TYPE_CHECKING`` ones included: a dependency is a dependency), so it runs in the fast tier."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "monitor"

#: top to bottom; a layer may import the layers below it, never one above or beside it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("monitor.__main__",),
    ("monitor.cli",),
    ("monitor.app",),
    ("monitor.simulator",),
    ("monitor.poll",),
    ("monitor.output", "monitor.state"),  # independent of each other
    ("monitor.dli",),
    ("monitor.core",),
)


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def imports(path: Path) -> Iterator[str]:
    """The ``monitor`` modules ``path`` imports (a ``from package import module`` names the
    module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("monitor"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("monitor"):
            module = str(node.module)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield sub if sub in MODULES else module


def component(module: str) -> str:
    """The layer component a module belongs to (``monitor.poll.poller`` -> ``monitor.poll``)."""
    for layer in LAYERS:
        for name in layer:
            if module == name or module.startswith(name + "."):
                return name
    return "monitor"  # the package itself: its version, importable from anywhere


def rank(name: str) -> int:
    return next((i for i, layer in enumerate(LAYERS) if name in layer), len(LAYERS))


GRAPH = {m: sorted(set(imports(p)) - {m}) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_import_points_down_or_stays_in_its_component(module: str) -> None:
    here = component(module)
    wrong = [
        target
        for target in GRAPH[module]
        if (there := component(target)) != here and rank(there) <= rank(here)
    ]
    assert not wrong, f"{module} ({here}) imports upward or sideways: {wrong}"


def test_no_module_takes_part_in_an_import_circle() -> None:
    # Tarjan's strongly connected components; any with two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH.get(module, []):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            members = []
            while (top := stack.pop()) != module:
                members.append(top)
            if members:
                circles.append(sorted([module, *members]))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not circles, circles


def test_the_contract_can_fail() -> None:
    """Upward, sideways and circular imports are each seen (so the tests above judge)."""
    assert rank(component("monitor.core.snapshot")) > rank(component("monitor.dli.models"))
    assert component("monitor.output.events") != component("monitor.state.codec")
    assert rank("monitor.output") == rank("monitor.state")
    assert "monitor.app.shutdown" in set(imports(MODULES["monitor.__main__"]))
