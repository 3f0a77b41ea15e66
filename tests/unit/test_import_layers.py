"""The import graph of the repository's own code (read from the source with
`ast`, type-only and function-level imports included): no cycle, the layer
depends on nothing above it, the fan-out reads top-down, and the fan-out
image loads none of the REST functions' heavy dependencies."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = {
    "aurora": ROOT / "layers" / "aurora" / "aurora",
    "fanout": ROOT / "fanout",
    "local": ROOT / "local",
    "functions": ROOT / "functions",
}

# The fan-out, top-down: each module imports only from the layers below its own.
FANOUT_LAYERS = [
    {"fanout.__main__"},
    {"fanout.server"},  # handshake, lifecycle, wiring
    {"fanout.session"},  # one client's frames
    {"fanout.replica", "fanout.subscriber", "fanout.connection", "fanout.keepalive"},
    {"fanout.access"},  # room access: the cache, expelling refused members
    {"fanout.hub", "fanout.revocation", "fanout.presence", "fanout.expiry"},
    {
        "fanout.protocol",
        "fanout.metrics",
        "fanout.connection_limit",
        "fanout.upload_check",
        "fanout.frame_limit",
        "fanout.typing",
        "fanout.admission",
        "fanout.users",
        "fanout.memory",
    },
]

# Installed for the REST functions only (fanout/requirements.txt has none of them).
NOT_IN_THE_FANOUT_IMAGE = {"fastapi", "starlette", "mangum", "bcrypt", "pymongo", "bson"}


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            parts = [package, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


@cache
def imports(name: str) -> tuple[tuple[str, bool], ...]:
    """(imported module, whether the import runs when `name` is loaded):
    False for imports inside functions and under `if TYPE_CHECKING:`."""
    path = modules()[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, on_load: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, on_load) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in modules() else base, on_load))
        for child in ast.iter_child_nodes(node):
            deferred = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            )
            visit(child, on_load and not deferred)

    visit(tree, True)
    return tuple(found)


def own_imports(name: str) -> set[str]:
    return {target for target, _ in imports(name) if target in modules()}


def test_the_repository_has_no_import_cycle():
    # Tarjan's strongly connected components; any with two modules or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(own_imports(module)):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1 or module in own_imports(module):
                cycles.append(sorted(component))

    for module in sorted(modules()):
        if module not in index:
            connect(module)
    assert cycles == []


def test_the_layer_imports_nothing_from_functions_fanout_or_local():
    upward = {
        (module, target)
        for module in modules()
        if module.split(".")[0] == "aurora"
        for target in own_imports(module)
        if target.split(".")[0] != "aurora"
    }
    assert upward == set()


def test_every_fanout_module_has_its_place_in_the_layers():
    placed = set().union(*FANOUT_LAYERS)
    assert {m for m in modules() if m.startswith("fanout.")} == placed


@pytest.mark.parametrize("level", range(len(FANOUT_LAYERS)))
def test_the_fanout_depends_downward_only(level):
    below = set().union(*FANOUT_LAYERS[level + 1 :])
    wrong = {
        (module, target)
        for module in FANOUT_LAYERS[level]
        for target in own_imports(module)
        if target.startswith("fanout.") and target not in below
    }
    assert wrong == set()


def test_the_fanout_image_never_loads_what_only_the_rest_functions_install():
    """fanout/ imports none of them anywhere; the layer's modules the fan-out
    can reach import them only where the fan-out never goes (inside the
    functions the REST tier calls), never when the module loads."""
    reachable, todo = set(), [m for m in modules() if m.startswith("fanout")]
    while todo:
        module = todo.pop()
        if module not in reachable:
            reachable.add(module)
            todo.extend(own_imports(module))
    loaded = {
        (module, target)
        for module in reachable
        for target, on_load in imports(module)
        if target.split(".")[0] in NOT_IN_THE_FANOUT_IMAGE
        and (on_load or module.startswith("fanout"))
    }
    assert loaded == set()
    assert "aurora.tokens" in reachable and "aurora.passwords" not in reachable
    # Not even on first use: the fan-out reads and refreshes its secrets with
    # aurora.secrets, which needs boto3 alone (the image has no Powertools).
    powertools = {
        (module, target)
        for module in reachable
        for target, _ in imports(module)
        if target.split(".")[0] == "aws_lambda_powertools"
    }
    assert "aurora.secrets" in reachable and powertools == set()
