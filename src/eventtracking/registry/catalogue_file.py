"""Load event and context documentation from a TOML catalogue file.

For teams that do not write Python::

    [events."edx.video.played"]
    description = "A learner started a video."
    policy = "warn"                      # optional: warn | strict | off
    additional_fields = false            # optional

    [events."edx.video.played".fields]
    video_id = "The video's usage key."
    position = { description = "Seconds from the start.", type = "number", required = true }

    [contexts.request]
    description = "Filled by the request middleware."
    fields = { user_id = { description = "The learner.", type = "integer", pii = true } }
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..exceptions import ImproperlyConfigured
from .registry import Registry

_SECTIONS = {"events": "event", "contexts": "context"}
_ENTRY_KEYS = {"description", "fields", "schema", "policy", "additional_fields"}


def load_catalogue(path: str | os.PathLike[str], registry: Registry) -> int:
    """Register every type in the TOML file at `path`; returns how many were read."""
    target = Path(path)
    try:
        with target.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ImproperlyConfigured(f"{target}: catalogue file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImproperlyConfigured(f"{target}: invalid TOML: {exc}") from exc
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise ImproperlyConfigured(
            f"{target}: unknown section(s) {sorted(unknown)}; use [events.NAME] and [contexts.NAME]"
        )
    count = 0
    for section, kind in _SECTIONS.items():
        entries = data.get(section, {})
        for name, entry in entries.items():
            where = f"{target}: {section}.{name}"
            if not isinstance(entry, Mapping):
                raise ImproperlyConfigured(f"{where}: must be a table")
            bad = set(entry) - _ENTRY_KEYS
            if bad:
                raise ImproperlyConfigured(
                    f"{where}: unknown key(s) {sorted(bad)}; valid: {sorted(_ENTRY_KEYS)}"
                )
            options: dict[str, Any] = {
                key: entry[key] for key in ("schema", "policy", "additional_fields") if key in entry
            }
            try:
                registry.register(
                    name,
                    entry.get("description", ""),
                    entry.get("fields"),
                    kind=kind,  # type: ignore[arg-type]
                    source=f"{target}",
                    **options,
                )
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured(f"{target}: {exc}") from exc
            count += 1
    return count
