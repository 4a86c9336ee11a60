"""The way runs forward: lower layers never import the ones above them.

Every import in the source tree is read (top-level and inside functions) and
resolved to a module name; the rules are those of DESIGN.md: a backend never
imports the tracker, the configuration or the package root; a store and the
registry never import a backend; the core never imports the command line,
the stream consumer, the console or the Django app.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "eventtracking"
APPLICATIONS = (
    "eventtracking.cli",
    "eventtracking.console",
    "eventtracking.consumer",
    "eventtracking.django",
)
ABOVE_BACKENDS = (
    "eventtracking.tracker",
    "eventtracking.track",
    "eventtracking.config",
    *APPLICATIONS,
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative).is_dir()


def is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test) if test else False


def nodes(tree: ast.AST, typing: bool) -> list[ast.AST]:
    """Every node of `tree`; without `typing`, not those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if not typing and is_type_checking(node):
            pending.extend(getattr(node, "orelse", []))
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def imports_of(path: Path, typing: bool = True) -> set[str]:
    """Every module `path` imports, relative imports resolved, `from x import y` as x and x.y.

    Imports inside functions count; those under ``if TYPE_CHECKING:`` only with `typing`.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes(ast.parse(path.read_text(), str(path)), typing):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                target = f"{origin}.{alias.name}"
                if is_module(target):
                    found.add(target)  # `from .. import diagnostics` imports that module
                else:
                    found.add(origin)  # a name defined in `origin` itself
                    found.add(target)
    return found


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (SRC / package).rglob("*.py"))


def offending(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        imported
        for imported in imports_of(path)
        if imported == "eventtracking"
        or any(imported == f or imported.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize("path", modules("backends"), ids=lambda p: p.name)
def test_a_backend_imports_nothing_above_it(path: Path) -> None:
    assert offending(path, ABOVE_BACKENDS) == []


@pytest.mark.parametrize("path", modules("store", "registry"), ids=lambda p: p.name)
def test_stores_and_the_registry_import_no_backend(path: Path) -> None:
    assert offending(path, ("eventtracking.backends", *ABOVE_BACKENDS)) == []


@pytest.mark.parametrize("path", modules("delivery", "processors", "catalog"), ids=lambda p: p.name)
def test_delivery_processors_and_catalogue_import_nothing_above_them(path: Path) -> None:
    assert offending(path, ABOVE_BACKENDS) == []


def test_the_core_never_imports_the_applications_on_top_of_it() -> None:
    core = [
        p
        for p in SRC.rglob("*.py")
        if not module_name(p).startswith(APPLICATIONS) and p.name != "__main__.py"
    ]
    assert core
    problems = {module_name(p): offending(p, APPLICATIONS) for p in core}
    assert {name: found for name, found in problems.items() if found} == {}


def core_modules() -> list[Path]:
    return [
        p
        for p in sorted(SRC.rglob("*.py"))
        if not module_name(p).startswith(APPLICATIONS) and p.name != "__main__.py"
    ]


def test_no_import_cycles_in_the_core_even_inside_functions() -> None:
    # A package's __init__ may gather its own submodules (`from .x import y`);
    # an edge from a submodule up to its own package is not a dependency on
    # its siblings, so it is left out. Every other import counts, wherever it
    # is written (module level or in a function); imports for type checking
    # only never run, so they do not.
    paths = {module_name(p): p for p in core_modules()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        graph[name] = {
            imported
            for imported in imports_of(path, typing=False)
            if imported in paths and imported != name and not name.startswith(imported + ".")
        }
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the strongly connected components of `graph`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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
                found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(graph) if len(c) > 1] == [["a", "b", "c"]]


def test_the_process_state_module_imports_nothing_from_the_package() -> None:
    imported = imports_of(SRC / "_state.py", typing=False)
    assert sorted(i for i in imported if i.split(".")[0] == "eventtracking") == []


MUTABLE_FACTORIES = frozenset(
    {"Lock", "RLock", "Condition", "Counter", "WeakSet", "WeakValueDictionary",
     "WeakKeyDictionary", "local", "dict", "list", "set", "defaultdict", "OrderedDict", "deque"}
)  # fmt: skip
# Module-level state the core may keep outside `_state`: the id generator's
# current millisecond, read on every id (see `_state`'s docstring), and its
# pool of random bits, read under the same lock and dropped with it at fork.
STATE_ALLOWED = {"eventtracking.event": {"_lock", "_state", "_hooked", "_pool", "_pool_at"}}


def module_state(path: Path) -> set[str]:
    """Names bound at module level to a new mutable container or lock, or rebound by `global`."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in tree.body:
        value = getattr(node, "value", None)
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        empty = isinstance(value, (ast.Dict, ast.List, ast.Set)) and not (
            getattr(value, "keys", None) or getattr(value, "elts", None)
        )
        made = isinstance(value, ast.Call) and (
            getattr(value.func, "attr", None) in MUTABLE_FACTORIES
            or getattr(value.func, "id", None) in MUTABLE_FACTORIES
        )
        if empty or made:
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
    return names


def test_process_state_lives_in_one_module() -> None:
    found = {
        module_name(p): module_state(p)
        for p in core_modules()
        if module_name(p) != "eventtracking._state"
    }
    extra = {
        name: sorted(state - STATE_ALLOWED.get(name, set()))
        for name, state in found.items()
        if state - STATE_ALLOWED.get(name, set())
    }
    assert extra == {}


def test_the_state_finder_sees_state() -> None:
    assert {"_lock", "_state", "_hooked"} <= module_state(SRC / "event.py")
    assert {"counters", "metadata_by_id", "HOOKS"} - module_state(SRC / "_state.py") == {"HOOKS"}


@pytest.mark.parametrize("path", modules("console"), ids=lambda p: p.name)
def test_the_console_uses_the_core_not_the_command_line(path: Path) -> None:
    # What the console and the commands share (reports, replay) lives in the core.
    assert offending(path, ("eventtracking.cli",)) == []
