"""What a registered event or context type is: fields, versions and content ids.

A `TypeVersion` is immutable. Its id is derived from its content only (kind,
name, description, fields and JSON Schema, canonically encoded), so the same
documentation gives the same id in every process, and any change gives a new
one. Where and when it was registered are recorded but not part of the id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from ..exceptions import ImproperlyConfigured

Kind = Literal["event", "context"]
Policy = Literal["warn", "strict", "off"]
POLICIES: Final = ("warn", "strict", "off")

# Field types as JSON Schema names, with the Python names people also write.
TYPE_ALIASES: Final = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "object": "object",
    "dict": "object",
    "array": "array",
    "list": "array",
    "null": "null",
    "none": "null",
    "any": "any",
}
_FIELD_KEYS: Final = {"description", "type", "required", "enum", "format", "examples", "pii"}


@dataclass(frozen=True)
class FieldSpec:
    """One documented field: its meaning and the rules emit checks."""

    name: str
    description: str = ""
    type: tuple[str, ...] = ()  # JSON Schema type names; empty = any
    required: bool = False
    enum: tuple[Any, ...] | None = None
    format: str | None = None  # documentation only (date-time, uri, email...)
    examples: tuple[Any, ...] = ()
    pii: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The field as plain JSON-ready data (only the keys that say something)."""
        out: dict[str, Any] = {"description": self.description}
        if self.type:
            out["type"] = list(self.type)
        if self.required:
            out["required"] = True
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.format:
            out["format"] = self.format
        if self.examples:
            out["examples"] = list(self.examples)
        if self.pii:
            out["pii"] = True
        return out


def parse_field(name: str, spec: Any, where: str) -> FieldSpec:
    """Build a FieldSpec from a description string or a dict of field options."""
    if not isinstance(name, str) or not name:
        raise ImproperlyConfigured(f"{where}: field names must be non-empty strings, not {name!r}")
    path = f"{where}.{name}"
    if isinstance(spec, str):
        return FieldSpec(name=name, description=spec)
    if not isinstance(spec, Mapping):
        raise ImproperlyConfigured(
            f"{path}: a field is a description string or a dict with keys {sorted(_FIELD_KEYS)}"
        )
    unknown = set(spec) - _FIELD_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"{path}: unknown key(s) {sorted(unknown)}; valid: {sorted(_FIELD_KEYS)}"
        )
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ImproperlyConfigured(f"{path}.description: must be a string")
    types = spec.get("type", ())
    if isinstance(types, str):
        types = (types,)
    try:
        canonical = tuple(sorted({TYPE_ALIASES[t.lower()] for t in types}))
    except (KeyError, AttributeError):
        raise ImproperlyConfigured(
            f"{path}.type: {spec.get('type')!r} is not a type; use one of "
            f"{sorted(set(TYPE_ALIASES.values()))}"
        ) from None
    if "any" in canonical:
        canonical = ()
    enum = spec.get("enum")
    if enum is not None and (isinstance(enum, str) or not isinstance(enum, list | tuple)):
        raise ImproperlyConfigured(f"{path}.enum: must be a list of allowed values")
    for key in ("required", "pii"):
        if not isinstance(spec.get(key, False), bool):
            raise ImproperlyConfigured(f"{path}.{key}: must be true or false")
    examples = spec.get("examples", ())
    if not isinstance(examples, list | tuple):
        examples = (examples,)
    fmt = spec.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise ImproperlyConfigured(f"{path}.format: must be a string such as 'date-time'")
    return FieldSpec(
        name=name,
        description=description,
        type=canonical,
        required=spec.get("required", False),
        enum=None if enum is None else tuple(enum),
        format=fmt,
        examples=tuple(examples),
        pii=spec.get("pii", False),
    )


def schema_from_fields(fields: tuple[FieldSpec, ...]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a set of fields describes, for the data object."""
    properties: dict[str, Any] = {}
    for spec in fields:
        prop: dict[str, Any] = {}
        if spec.description:
            prop["description"] = spec.description
        if len(spec.type) == 1:
            prop["type"] = spec.type[0]
        elif spec.type:
            prop["type"] = list(spec.type)
        if spec.enum is not None:
            prop["enum"] = list(spec.enum)
        if spec.format:
            prop["format"] = spec.format
        if spec.examples:
            prop["examples"] = list(spec.examples)
        if spec.pii:
            prop["x-pii"] = True
        properties[spec.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [spec.name for spec in fields if spec.required]
    if required:
        schema["required"] = required
    return schema


def fields_from_schema(schema: Mapping[str, Any], where: str) -> tuple[FieldSpec, ...]:
    """Fields from the top-level properties of an object JSON Schema."""
    if not isinstance(schema, Mapping):
        raise ImproperlyConfigured(f"{where}: schema must be a JSON Schema object (a dict)")
    if schema.get("type", "object") != "object":
        raise ImproperlyConfigured(f"{where}: schema must describe an object (type: object)")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ImproperlyConfigured(f"{where}.properties: must be a mapping of field schemas")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in properties.items():
        if not isinstance(prop, Mapping):
            raise ImproperlyConfigured(f"{where}.properties.{name}: must be a schema object")
        spec: dict[str, Any] = {
            "description": prop.get("description", prop.get("title", "")),
            "required": name in required,
            "pii": bool(prop.get("x-pii", False)),
        }
        if "type" in prop:
            spec["type"] = prop["type"]
        for key in ("enum", "format", "examples"):
            if key in prop:
                spec[key] = prop[key]
        out.append(parse_field(name, spec, f"{where}.properties"))
    return tuple(out)


@dataclass(frozen=True)
class TypeVersion:
    """One version of the documentation of an event or context type."""

    kind: Kind
    name: str
    description: str
    fields: tuple[FieldSpec, ...]
    schema: dict[str, Any] = field(hash=False, compare=False)
    id: str = ""
    source: str = ""  # "module:line" where it was registered
    registered_at: datetime | None = field(default=None, compare=False)
    strict_fields: bool = True  # unknown fields are a problem (JSON Schema additionalProperties)

    def content(self) -> dict[str, Any]:
        """What the id is derived from."""
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "fields": {spec.name: spec.to_dict() for spec in self.fields},
            "schema": self.schema,
            "additional_fields": not self.strict_fields,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything about this version, JSON-ready (what stores persist)."""
        return {
            "id": self.id,
            **self.content(),
            "source": self.source,
            "registered_at": self.registered_at.isoformat() if self.registered_at else None,
        }

    def field(self, name: str) -> FieldSpec | None:
        """The documented field `name`, or None."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None


def content_id(content: Mapping[str, Any]) -> str:
    """A 16-hex-digit id of canonically encoded content: equal content, equal id."""
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def version_from_dict(data: Mapping[str, Any]) -> TypeVersion:
    """Rebuild a TypeVersion from `to_dict()` output (for instance, read from a store)."""
    fields = tuple(
        parse_field(name, spec, f"type {data.get('name')!r}")
        for name, spec in (data.get("fields") or {}).items()
    )
    when = data.get("registered_at")
    return TypeVersion(
        kind=data.get("kind", "event"),
        name=str(data.get("name")),
        description=str(data.get("description", "")),
        fields=fields,
        schema=dict(data.get("schema") or schema_from_fields(fields)),
        id=str(data.get("id", "")),
        source=str(data.get("source", "")),
        registered_at=datetime.fromisoformat(when) if isinstance(when, str) else None,
        strict_fields=not data.get("additional_fields", False),
    )
