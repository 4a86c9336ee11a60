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


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved, `from x import y` as x and x.y."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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
