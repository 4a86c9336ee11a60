"""Gather what the catalogue shows: documented types, what was stored, and the drift.

Sources: a `Registry` (types registered in code or loaded from catalogue
files) and, optionally, a store (the versions it kept, and the events it
holds). When no registry is given the store's own versions are the
documentation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..registry.model import Kind, TypeVersion, version_from_dict
from ..registry.registry import Registry

PII_MASK = "[PII]"


class CatalogueStore(Protocol):
    """What the catalogue reads from a store."""

    def types(self, kind: str | None = None) -> list[dict[str, Any]]: ...

    def summaries(self) -> list[tuple[str, int, datetime, datetime]]: ...

    def field_counts(self, section: str) -> dict[str, dict[str, int]]: ...

    def latest(self, name: str) -> dict[str, Any] | None: ...


@dataclass
class FieldChange:
    """How one field differs between two consecutive versions."""

    field: str
    change: str  # "added", "removed" or "changed"
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass
class TypeEntry:
    """Everything the catalogue says about one event or context type."""

    kind: str
    name: str
    current: TypeVersion | None
    versions: list[TypeVersion] = field(default_factory=list)
    changes: list[list[FieldChange]] = field(default_factory=list)  # per version after the first
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    example: dict[str, Any] | None = None
    observed_fields: dict[str, int] = field(default_factory=dict)
    usual_contexts: dict[str, float] = field(default_factory=dict)  # context key -> share
    undocumented_fields: list[str] = field(default_factory=list)
    unseen_fields: list[str] = field(default_factory=list)

    @property
    def documented(self) -> bool:
        """True when some version documents this type."""
        return self.current is not None


@dataclass
class Catalogue:
    """The whole catalogue: event types, context types and drift."""

    events: list[TypeEntry]
    contexts: list[TypeEntry]
    has_store: bool

    @property
    def unregistered(self) -> list[str]:
        """Event names stored but never registered."""
        return [e.name for e in self.events if not e.documented and e.count]

    @property
    def drift(self) -> dict[str, Any]:
        """The drift report: empty lists everywhere when code, docs and data agree."""
        return {
            "unregistered": self.unregistered,
            "undocumented_fields": {
                e.name: e.undocumented_fields for e in self.events if e.undocumented_fields
            },
            "unseen_fields": {e.name: e.unseen_fields for e in self.events if e.unseen_fields},
        }

    @property
    def has_drift(self) -> bool:
        """True when the drift report is not empty."""
        return any(bool(value) for value in self.drift.values())


def diff(before: TypeVersion, after: TypeVersion) -> list[FieldChange]:
    """The field-by-field difference between two versions of a type."""
    old = {spec.name: spec.to_dict() for spec in before.fields}
    new = {spec.name: spec.to_dict() for spec in after.fields}
    changes = [FieldChange(name, "added", None, new[name]) for name in new if name not in old]
    changes += [FieldChange(name, "removed", old[name], None) for name in old if name not in new]
    changes += [
        FieldChange(name, "changed", old[name], new[name])
        for name in new
        if name in old and old[name] != new[name]
    ]
    if before.description != after.description:
        changes.append(
            FieldChange(
                "(description)",
                "changed",
                {"description": before.description},
                {"description": after.description},
            )
        )
    return changes


def mask_pii(
    event: Mapping[str, Any],
    version: TypeVersion | Iterable[TypeVersion] | None,
    context_pii: Iterable[str] = (),
) -> dict[str, Any]:
    """A copy of `event` whose fields documented as PII show `PII_MASK` instead.

    `version` is the event type's documentation (one version, or every
    version: a field marked PII in any of them is masked in ``data``);
    `context_pii` names the ``context`` fields that a documented context type
    marks PII (`pii_fields` of the context types).
    """
    masked = dict(event)
    versions = [version] if isinstance(version, TypeVersion) else list(version or ())
    data_pii, context_pii = pii_fields(versions), set(context_pii)
    for part, pii in (("data", data_pii), ("context", context_pii)):
        value = event.get(part)
        if pii and isinstance(value, Mapping):
            masked[part] = {k: (PII_MASK if k in pii else v) for k, v in value.items()}
    meta = event.get("meta")
    problems = meta.get("problems") if isinstance(meta, Mapping) else None
    if isinstance(meta, Mapping) and isinstance(problems, list):
        # A problem's detail can quote the value ("'a@b.c' is not allowed").
        masked["meta"] = {
            **meta,
            "problems": [_masked_problem(p, data_pii, context_pii) for p in problems],
        }
    return masked


def _masked_problem(problem: Any, data_pii: set[str], context_pii: set[str]) -> Any:
    if not isinstance(problem, Mapping) or not isinstance(problem.get("field"), str):
        return problem
    part, *path = problem["field"].split(".")  # data.FIELD... or context.TYPE.FIELD...
    name = path[0] if part == "data" and path else path[1] if len(path) > 1 else ""
    if (part == "data" and name in data_pii) or (part == "context" and name in context_pii):
        return {**problem, "detail": PII_MASK}
    return problem


def pii_fields(versions: Iterable[TypeVersion]) -> set[str]:
    """The names of the fields any of `versions` marks PII."""
    return {spec.name for version in versions for spec in version.fields if spec.pii}


def _combined(registry: Registry | None, store: CatalogueStore | None) -> Registry:
    """A fresh registry: the given one's versions plus those only the store kept.

    The given registry stays untouched, and its current versions stay current.
    """
    combined = Registry()
    current: list[TypeVersion] = []
    if registry is not None:
        kinds: tuple[Kind, Kind] = ("event", "context")
        for kind in kinds:
            for version in registry.types(kind):
                for older in registry.versions(version.name, version.kind):
                    combined.add(older)
                current.append(version)
    if store is not None:
        for entry in store.types():
            combined.add(version_from_dict(entry))
    for version in current:
        combined.add(version)  # registered documentation wins over stored history
    return combined


def build_catalogue(registry: Registry | None, store: CatalogueStore | None) -> Catalogue:
    """Put documentation and stored events side by side (see module docs)."""
    registry = _combined(registry, store)
    events = {v.name: _entry(registry, "event", v.name) for v in registry.types("event")}
    contexts = [_entry(registry, "context", v.name) for v in registry.types("context")]
    # Context fields are merged into one mapping per event: a name marked PII by any
    # version of any documented context type is masked wherever it appears.
    context_pii = pii_fields(v for entry in contexts for v in entry.versions)
    if store is not None:
        data_fields = store.field_counts("data")
        context_keys = store.field_counts("context")
        for name, count, first, last in store.summaries():
            entry = events.setdefault(name, TypeEntry("event", name, None))
            entry.count, entry.first_seen, entry.last_seen = count, first, last
            entry.observed_fields = data_fields.get(name, {})
            entry.usual_contexts = {
                key: seen / count for key, seen in sorted(context_keys.get(name, {}).items())
            }
            latest = store.latest(name)
            if latest is not None:
                versions = entry.versions or ([entry.current] if entry.current else [])
                entry.example = mask_pii(latest, versions, context_pii)
            if entry.current is not None:
                documented = {spec.name for spec in entry.current.fields}
                entry.undocumented_fields = sorted(set(entry.observed_fields) - documented)
                entry.unseen_fields = sorted(documented - set(entry.observed_fields))
    ordered = sorted(events.values(), key=lambda e: e.name)
    return Catalogue(events=ordered, contexts=contexts, has_store=store is not None)


def _entry(registry: Registry, kind: str, name: str) -> TypeEntry:
    versions = sorted(
        registry.versions(name, kind),  # type: ignore[arg-type]
        key=lambda v: (v.registered_at is None, v.registered_at or datetime.min),
    )
    changes = [diff(a, b) for a, b in itertools.pairwise(versions)]
    return TypeEntry(kind, name, registry.current(name, kind), versions, changes)  # type: ignore[arg-type]
