"""The curated public API: `__all__` lists exactly the public names of each public module."""

from __future__ import annotations

import importlib

import pytest

import eventtracking

MODULES = [
    "eventtracking",
    "eventtracking.tracker",
    "eventtracking.track",
    "eventtracking.processors",
    "eventtracking.testing",
]


def test_package_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(eventtracking).items()
        if not name.startswith("_") and not isinstance(value, type(importlib))
    }
    public.discard("annotations")
    assert sorted(public) == sorted(set(eventtracking.__all__) - {"__version__"})


@pytest.mark.parametrize("module_name", MODULES)
def test_all_names_exist_and_cover_what_the_module_defines(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert hasattr(module, name), name
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name
    }
    assert defined <= set(module.__all__), sorted(defined - set(module.__all__))


def test_openedx_import_paths_exist() -> None:
    from eventtracking.backends.logger import DateTimeJSONEncoder, LoggerBackend  # noqa: F401
    from eventtracking.backends.routing import RoutingBackend  # noqa: F401
    from eventtracking.exceptions import ImproperlyConfigured  # noqa: F401
    from eventtracking.locator import (  # noqa: F401
        DefaultContextLocator,
        ThreadLocalContextLocator,
    )
    from eventtracking.processors.exceptions import (  # noqa: F401
        EventEmissionExit,
        NoBackendEnabled,
        NoTransformerImplemented,
    )
    from eventtracking.processors.regex_filter import RegexFilter  # noqa: F401
    from eventtracking.processors.whitelist import NameWhitelistProcessor  # noqa: F401

    assert eventtracking.__version__
