"""Import an object by its dotted path, with an error that names where the path was written."""

from __future__ import annotations

import importlib
from typing import Any

from .exceptions import ImproperlyConfigured


def import_object(dotted: str, path: str) -> Any:
    """Import ``package.module.Name``; the error names `path` in the tree."""
    if not isinstance(dotted, str) or "." not in dotted:
        raise ImproperlyConfigured(
            f"{path}: ENGINE must be a dotted path such as 'package.module.Class', not {dotted!r}"
        )
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{path}: cannot import {dotted!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImproperlyConfigured(
            f"{path}: cannot import {dotted!r}: module {module_name!r} has no {attr!r}"
        ) from None
