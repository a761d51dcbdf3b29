"""The layers of ``src/tidings`` and the size of its parts, read from the source with `ast` (``make lint`` runs it).

The rules: the core (``tidings.server.core``) imports no outer layer and no I/O library; an engine, a store and
the Redis plumbing import no transport and no CLI; the CLI uses the server's public packages only; nothing imports
in a circle; and no module or function grows past what one reading holds. Every import counts, including those
under ``TYPE_CHECKING`` and inside functions: a cycle that only type checking or a late import hides is still two
modules that cannot be read apart.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

CORE = "tidings.server.core"
# What the core must not import: every other layer of the server, the CLI and the SDK, and the libraries that do
# the I/O those layers own.
CORE_MUST_NOT_IMPORT = (
    *(
        f"tidings.server.{layer}"
        for layer in (
            "engine",
            "store",
            "grpc",
            "http",
            "webhooks",
            "auth",
            "backend",
            "process",
            "redis_io",
            "testadmin",
            "connections",
            "app",
            "config",
        )
    ),
    "tidings.cli",
    "tidings.client",
    "tidings.protos",
    "tidings.testing",
    "grpc",
    "google.protobuf",
    "momento_wire_types",
    "starlette",
    "h2",
    "httpx",
    "sqlite3",
    "redis",
    "click",
)
# The layers below the transports, and what they must not import: a transport (tidings' or its libraries), the
# CLI, or each other (the engine and the store share only the Redis plumbing, ``redis_io``).
BACKEND_LAYERS = ("tidings.server.engine", "tidings.server.store", "tidings.server.redis_io")
BACKEND_MUST_NOT_IMPORT = (
    "tidings.server.grpc",
    "tidings.server.http",
    "tidings.cli",
    "grpc",
    "starlette",
    "h2",
    "click",
)
SEPARATE_BACKENDS = (
    ("tidings.server.engine", "tidings.server.store"),
    ("tidings.server.store", "tidings.server.engine"),
)

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True, slots=True)
class Import:
    """``importer`` imports ``name`` (a module, or a name in one) at ``line``."""

    importer: str
    name: str
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _sources() -> dict[str, tuple[Path, ast.Module]]:
    """Every module under ``src/``, by dotted name, parsed."""
    sources = {}
    for path in sorted(SRC.rglob("*.py")):
        sources[_module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return sources


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names one import statement of ``module`` imports: ``import a.b`` imports ``a.b``;
    ``from a import b`` imports ``a`` (the package's ``__init__`` runs) and ``a.b`` (a module or a name)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _imports_of(module: str, is_package: bool, tree: ast.AST) -> Iterator[Import]:
    """Every import in one module, wherever it is written (module level, ``TYPE_CHECKING``, functions), and the
    modules a ``COMMANDS`` table names for ``importlib`` (the CLI's commands, imported when they run)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from (Import(module, name, node.lineno) for name in _imported_names(module, is_package, node))
        elif (
            isinstance(node, ast.AnnAssign | ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == "COMMANDS" for target in _targets(node))
            and isinstance(node.value, ast.Dict)
        ):
            for value in node.value.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    yield Import(module, value.value, value.lineno)


def _targets(node: ast.AnnAssign | ast.Assign) -> list[ast.expr]:
    return [node.target] if isinstance(node, ast.AnnAssign) else node.targets


@cache
def _imports() -> tuple[Import, ...]:
    """Every import in ``src/tidings``."""
    return tuple(
        found
        for module, (path, tree) in _sources().items()
        if _within(module, "tidings")
        for found in _imports_of(module, path.name == "__init__.py", tree)
    )


def _described(imports: Iterable[Import]) -> list[str]:
    """``importer (line n) imports name``, one line per import statement (naming the shortest name it broke on)."""
    shortest: dict[tuple[str, int], str] = {}
    for found in imports:
        key = (found.importer, found.line)
        if key not in shortest or len(found.name) < len(shortest[key]):
            shortest[key] = found.name
    return [f"{importer} (line {line}) imports {name}" for (importer, line), name in sorted(shortest.items())]


def _forbidden(importers: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    """Each import by a module under ``importers`` of a name under ``forbidden``."""
    importers, forbidden = tuple(importers), tuple(forbidden)
    return _described(
        found
        for found in _imports()
        if any(_within(found.importer, prefix) for prefix in importers)
        and any(_within(found.name, prefix) for prefix in forbidden)
    )


def test_core_imports_no_outer_layer_and_no_io_library() -> None:
    violations = _forbidden([CORE], CORE_MUST_NOT_IMPORT)

    assert not violations, "the core imports an outer layer or an I/O library:\n" + "\n".join(violations)


def test_engines_stores_and_redis_plumbing_import_no_transport_no_cli_and_not_each_other() -> None:
    violations = _forbidden(BACKEND_LAYERS, BACKEND_MUST_NOT_IMPORT)
    for importer, imported in SEPARATE_BACKENDS:
        violations += _forbidden([importer], [imported])

    assert not violations, "a backend layer imports a transport, the CLI or another backend layer:\n" + "\n".join(
        violations
    )


def _is_private(segment: str) -> bool:
    return segment.startswith("_") and not (segment.startswith("__") and segment.endswith("__"))


def test_cli_imports_only_public_server_modules() -> None:
    violations = _described(
        found
        for found in _imports()
        if _within(found.importer, "tidings.cli")
        and _within(found.name, "tidings.server")
        and any(_is_private(segment) for segment in found.name.split("."))
    )

    assert not violations, "the CLI imports a private part of the server:\n" + "\n".join(violations)


def _module_graph(modules: set[str], imports: Iterable[Import]) -> dict[str, dict[str, int]]:
    """Module -> the ``modules`` it imports -> the line of the (first) import."""
    graph: dict[str, dict[str, int]] = {module: {} for module in modules}
    for found in imports:
        target = found.name
        while target and target not in modules:  # a name in a module: the module
            target = target.rpartition(".")[0]
        if target and target != found.importer:
            graph[found.importer].setdefault(target, found.line)
    return graph


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; only those of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def _one_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """A shortest cycle through the first module of ``component``, with the line of each import."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier and start not in came_from:
        following = []
        for node in frontier:
            for successor in sorted(graph[node]):
                if successor in members and successor not in came_from:
                    came_from[successor] = node
                    following.append(successor)
        frontier = following
    path = [start]
    while True:
        path.append(came_from[path[-1]])
        if path[-1] == start:
            break
    path.reverse()
    steps = [f"{node} (line {graph[node][successor]})" for node, successor in itertools.pairwise(path)]
    return " -> ".join([*steps, start])


def _tidings_graph() -> dict[str, dict[str, int]]:
    return _module_graph({name for name in _sources() if _within(name, "tidings")}, _imports())


def test_no_import_cycles() -> None:
    graph = _tidings_graph()

    cycles = [
        f"{', '.join(component)}\n    e.g. {_one_cycle(graph, component)}" for component in _strongly_connected(graph)
    ]

    assert not cycles, "modules that import each other, directly or around a circle:\n" + "\n".join(cycles)


def _is_generated(path: Path) -> bool:
    return "_pb2" in path.name


def test_no_module_is_over_400_lines() -> None:
    long_modules = [
        f"{module} ({path.relative_to(SRC.parent)}): {lines} lines"
        for module, (path, _) in _sources().items()
        if not _is_generated(path) and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]

    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long_modules)


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method in ``tree``, with its qualified name (``Class.method``, ``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{node.name}", node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def test_no_function_is_over_60_lines() -> None:
    long_functions = [
        f"{module}.{name} (line {function.lineno}): {lines} lines"
        for module, (path, tree) in _sources().items()
        if not _is_generated(path)
        for name, function in _functions(tree)
        if (lines := (function.end_lineno or function.lineno) - function.lineno + 1) > MAX_FUNCTION_LINES
    ]

    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long_functions)


SAMPLE = """
from __future__ import annotations
from typing import TYPE_CHECKING
from . import _sibling
from .._up import thing
import tidings.server.grpc
if TYPE_CHECKING:
    from tidings.server.core import TopicsService
def late():
    from tidings.server.engine.memory import MemoryEngine
"""


def test_every_kind_of_import_is_seen() -> None:
    # The checks above would pass vacuously if they missed imports: relative ones, ``import a.b``, those under
    # TYPE_CHECKING and those inside functions must all be found, and ``from package import name`` must count
    # as importing the package.
    found = {(item.name, item.line) for item in _imports_of("tidings.server.http._app", False, ast.parse(SAMPLE))}

    assert found >= {
        ("tidings.server.http", 4),
        ("tidings.server.http._sibling", 4),
        ("tidings.server._up", 5),
        ("tidings.server._up.thing", 5),
        ("tidings.server.grpc", 6),
        ("tidings.server.core", 8),
        ("tidings.server.core.TopicsService", 8),
        ("tidings.server.engine.memory.MemoryEngine", 10),
    }
    assert ("tidings.server.core._errors", 3) in {
        (item.name, item.line)
        for item in _imports_of("tidings.server.core", True, ast.parse("\n\nfrom ._errors import X"))
    }
    commands = 'COMMANDS: Final = {\n    "server": "tidings.cli._server",\n}'
    assert ("tidings.cli._server", 2) in {
        (item.name, item.line) for item in _imports_of("tidings.cli._main", False, ast.parse(commands))
    }
    assert {"tidings.cli._server", "tidings.cli._keys"} <= {
        item.name for item in _imports() if item.importer == "tidings.cli._main"
    }


def test_a_cycle_is_found_and_named_with_its_lines() -> None:
    imports = [
        Import("a", "b.name", 1),
        Import("b", "c", 2),
        Import("c", "a", 3),
        Import("c", "d", 4),
        Import("d", "d", 5),
    ]
    graph = _module_graph({"a", "b", "c", "d"}, imports)

    components = _strongly_connected(graph)

    assert components == [["a", "b", "c"]]
    assert _one_cycle(graph, components[0]) == "a (line 1) -> b (line 2) -> c (line 3) -> a"
    assert _strongly_connected(_module_graph({"a", "b"}, [Import("a", "b", 1)])) == []
    assert _tidings_graph()  # and the real graph is read
