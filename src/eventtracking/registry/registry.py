"""The registry: named event and context types, each with its versions.

Registering a name again with different documentation adds a version and
makes it current; the old versions stay. Registering the same documentation
again changes nothing (same content, same id). Every version is also kept in
a process-wide table keyed by id (`metadata_for`), which is how stores find
the documentation of the ids an event carries without a reference back to
the tracker.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import threading
import types
import typing
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from .. import _state, diagnostics
from ..exceptions import ImproperlyConfigured
from .model import (
    POLICIES,
    FieldSpec,
    Kind,
    Policy,
    TypeVersion,
    content_id,
    fields_from_schema,
    parse_field,
    schema_from_fields,
    version_from_dict,
)
from .schema import build_validator
from .validate import Validator


def remember(version: TypeVersion) -> None:
    """Add `version` to the process-wide table of known metadata."""
    with _state.metadata_lock:
        _state.metadata_by_id.setdefault(version.id, version)


def metadata_for(type_id: str) -> TypeVersion | None:
    """The documentation version with this id, if this process has seen it."""
    return _state.metadata_by_id.get(type_id)


def caller_source(depth: int) -> str:
    """``module:line`` of the frame `depth` levels above the caller."""
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:
        return ""
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_lineno}"


class RegistryWatcher(Protocol):
    """Something that caches what it read from a registry."""

    def registry_changed(self) -> None: ...


class Registry:
    """Event and context types with their versions; thread-safe.

    `version` increases on every change, so callers can cache lookups.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[tuple[Kind, str], list[TypeVersion]] = {}
        self._current: dict[tuple[Kind, str], TypeVersion] = {}
        self._validators: dict[str, Validator] = {}
        self._policies: dict[str, Policy] = {}
        # name -> (current id, its validator, policy override): one lookup per emit
        self._hot: dict[str, tuple[str, Validator, Policy | None]] = {}
        self.version = 0
        # Told after every change, so that they can drop what they cached.
        self._watchers: weakref.WeakSet[RegistryWatcher] = weakref.WeakSet()

    def __len__(self) -> int:
        return len(self._current)

    # -- registration -------------------------------------------------------------

    def register(
        self,
        name: str,
        description: str = "",
        fields: Mapping[str, Any] | None = None,
        *,
        schema: Mapping[str, Any] | None = None,
        kind: Kind = "event",
        policy: Policy | None = None,
        additional_fields: bool = False,
        source: str | None = None,
    ) -> TypeVersion:
        """Document type `name`; returns the (possibly new) current version.

        `fields` maps field names to a description or to a dict with
        ``description, type, required, enum, format, examples, pii``;
        `schema` is a JSON Schema for the data object instead. `policy`
        overrides the tracker's validation policy for this type;
        ``additional_fields=True`` allows fields that are not documented.
        """
        where = f"{kind} type {name!r}"
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(f"{kind} type names must be non-empty strings, not {name!r}")
        if not isinstance(description, str):
            raise ImproperlyConfigured(f"{where}: description must be a string")
        if policy is not None and policy not in POLICIES:
            raise ImproperlyConfigured(f"{where}: policy must be one of {POLICIES}, not {policy!r}")
        if fields is not None and schema is not None:
            raise ImproperlyConfigured(f"{where}: give fields or schema, not both")
        if schema is not None:
            specs = fields_from_schema(schema, f"{where} schema")
            schema_doc = dict(schema)
            if schema.get("additionalProperties") is True:
                additional_fields = True
        else:
            if fields is not None and not isinstance(fields, Mapping):
                raise ImproperlyConfigured(f"{where}: fields must map field names to docs")
            specs = tuple(parse_field(k, v, f"{where} fields") for k, v in (fields or {}).items())
            schema_doc = schema_from_fields(specs)
            if not additional_fields:
                schema_doc["additionalProperties"] = False
        draft = TypeVersion(
            kind=kind,
            name=name,
            description=description,
            fields=specs,
            schema=schema_doc,
            strict_fields=not additional_fields,
        )
        version = dataclasses.replace(
            draft,
            id=content_id(draft.content()),
            source=source if source is not None else caller_source(1),
            registered_at=datetime.now(UTC),
        )
        return self._add(version, policy, refuse=True)

    def add(self, version: TypeVersion, policy: Policy | None = None) -> TypeVersion:
        """Add an already built version (from a store or a catalogue file).

        A JSON Schema that cannot be honoured (see `schema`) is not an error
        here, since the version exists already: its fields are still checked.
        """
        return self._add(version, policy, refuse=False)

    def _add(self, version: TypeVersion, policy: Policy | None, refuse: bool) -> TypeVersion:
        key = (version.kind, version.name)
        # Compiled before the lock and before anything changes: a refused schema leaves
        # the registry as it was.
        built = None if version.id in self._validators else build_validator(version, refuse)
        with self._lock:
            versions = self._versions.setdefault(key, [])
            existing = next((v for v in versions if v.id == version.id), None)
            if existing is None:
                versions.append(version)
                existing = version
                if version.id not in self._validators:
                    self._validators[version.id] = built or build_validator(version, refuse)
            self._current[key] = existing
            if policy is not None:
                self._policies[version.name] = policy
            if version.kind == "event":
                self._hot[version.name] = (
                    existing.id,
                    self._validators[existing.id],
                    self._policies.get(version.name),
                )
            self.version += 1
        remember(existing)
        for watcher in list(self._watchers):
            watcher.registry_changed()
        return existing

    def watch(self, watcher: RegistryWatcher) -> None:
        """Call ``watcher.registry_changed()`` after every change (held weakly)."""
        self._watchers.add(watcher)

    def register_context(
        self,
        name: str,
        description: str = "",
        fields: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TypeVersion:
        """Document a context type (same arguments as `register`)."""
        options.setdefault("source", caller_source(1))
        return self.register(name, description, fields, kind="context", **options)

    def register_class(
        self, cls: type, name: str | None = None, description: str | None = None, **options: Any
    ) -> TypeVersion:
        """Document an event type from a dataclass or TypedDict.

        Field docs come from ``dataclasses.field(metadata={"description": ...})``
        or ``typing.Annotated[T, "description"]``; types from the annotations;
        a field without a default (dataclass) or in ``__required_keys__``
        (TypedDict) is required. The name defaults to ``cls.__event_name__``.
        """
        event_name = name or getattr(cls, "__event_name__", None)
        if not event_name:
            raise ImproperlyConfigured(
                f"{cls.__name__}: give name= or set __event_name__ on the class"
            )
        options.setdefault("source", caller_source(1))
        return self.register(
            event_name,
            description if description is not None else inspect.cleandoc(cls.__doc__ or ""),
            _fields_of_class(cls),
            **options,
        )

    # -- lookup ---------------------------------------------------------------------

    def current(self, name: str, kind: Kind = "event") -> TypeVersion | None:
        """The current version of `name`, or None."""
        return self._current.get((kind, name))

    def versions(self, name: str, kind: Kind = "event") -> list[TypeVersion]:
        """Every version of `name`, oldest first."""
        return list(self._versions.get((kind, name), ()))

    def types(self, kind: Kind = "event") -> list[TypeVersion]:
        """The current version of every type of `kind`, by name."""
        return sorted((v for (k, _), v in self._current.items() if k == kind), key=lambda v: v.name)

    def event_entry(self, name: str) -> tuple[str, Validator, Policy | None] | None:
        """(current version id, validator, policy override) for event type `name`."""
        return self._hot.get(name)

    def validator(self, type_id: str) -> Validator | None:
        """The compiled validator of a version."""
        return self._validators.get(type_id)

    def policy(self, name: str) -> Policy | None:
        """The policy set for type `name`, if any."""
        return self._policies.get(name)

    def load(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Add versions given as `TypeVersion.to_dict()` records (as stores keep them)."""
        for entry in entries:
            self.add(version_from_dict(entry))


def _fields_of_class(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise ImproperlyConfigured(f"{cls.__name__}: cannot read annotations: {exc}") from exc
    if dataclasses.is_dataclass(cls):
        docs = {f.name: f.metadata.get("description", "") for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        names = [f.name for f in dataclasses.fields(cls)]
    elif hasattr(cls, "__required_keys__"):  # TypedDict
        docs = {}
        required = set(cls.__required_keys__)
        names = list(hints)
    else:
        raise ImproperlyConfigured(f"{cls.__name__}: register_class takes a dataclass or TypedDict")
    fields: dict[str, Any] = {}
    for name in names:
        hint = hints.get(name, Any)
        description = docs.get(name, "")
        if typing.get_origin(hint) is typing.Annotated:
            base, *extras = typing.get_args(hint)
            description = description or next((e for e in extras if isinstance(e, str)), "")
            hint = base
        spec: dict[str, Any] = {"description": description, "required": name in required}
        types = _json_types(hint)
        if types:
            spec["type"] = types
        fields[name] = spec
    return fields


_JSON_OF: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    tuple: "array",
    type(None): "null",
}


def _json_types(hint: Any) -> list[str]:
    """JSON Schema type names for a simple annotation; [] (any) when unsure."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_json_types(arg) for arg in typing.get_args(hint)]
        return [] if any(not p for p in parts) else sorted({t for p in parts for t in p})
    base = origin if origin is not None else hint
    if base is typing.Literal:
        return []
    name = _JSON_OF.get(base)
    return [name] if name else []


__all__ = [
    "FieldSpec",
    "Registry",
    "TypeVersion",
    "caller_source",
    "metadata_for",
    "referenced_ids",
    "remember",
    "unseen_metadata",
]


def referenced_ids(event: Mapping[str, Any]) -> list[str]:
    """The type-version ids an event's meta refers to (its type, then its contexts)."""
    meta = event.get("meta")
    if not isinstance(meta, Mapping):
        return []
    ids = []
    type_id = meta.get("type")
    if isinstance(type_id, str):
        ids.append(type_id)
    contexts = meta.get("contexts")
    if isinstance(contexts, Mapping):
        ids.extend(v for v in contexts.values() if isinstance(v, str))
    return ids


def unseen_metadata(event: Mapping[str, Any], seen: set[str]) -> list[TypeVersion]:
    """Versions `event` refers to that are not in `seen` (which this adds them to).

    Sinks call this to write each documentation version once, before or with
    the first event that refers to it. Ids this process does not know (an
    event replayed from elsewhere) are counted and skipped.
    """
    found = []
    for type_id in referenced_ids(event):
        if type_id in seen:
            continue
        seen.add(type_id)
        version = metadata_for(type_id)
        if version is None:
            diagnostics.increment("metadata.unknown_id")
            continue
        found.append(version)
    return found
