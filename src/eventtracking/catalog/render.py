"""Render a catalogue as Markdown or as JSON Schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from ..serialization import dumps
from .build import Catalogue, TypeEntry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


def _fields_table(entry: TypeEntry) -> list[str]:
    lines = [
        "| field | type | required | PII | description | allowed | seen in |",
        "|---|---|---|---|---|---|---|",
    ]
    assert entry.current is not None
    for spec in entry.current.fields:
        seen = entry.observed_fields.get(spec.name, 0)
        share = f"{seen / entry.count:.0%}" if entry.count else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{_cell(spec.name)}`",
                    _cell(" or ".join(spec.type) or "any"),
                    "yes" if spec.required else "",
                    "yes" if spec.pii else "",
                    _cell(spec.description),
                    _cell(", ".join(map(repr, spec.enum)) if spec.enum else ""),
                    share,
                ]
            )
            + " |"
        )
    return lines


def _entry_markdown(entry: TypeEntry, has_store: bool) -> list[str]:
    out = [f"### `{entry.name}`", ""]
    if entry.current is None:
        out += ["**Not documented.**", ""]
    else:
        out += [entry.current.description or "_No description._", ""]
        out += _fields_table(entry) if entry.current.fields else ["_No fields._"]
        out.append("")
        out.append(f"Versions ({len(entry.versions)}):")
        out.append("")
        for i, version in enumerate(entry.versions):
            label = " (current)" if version.id == entry.current.id else ""
            out.append(
                f"- `{version.id}`{label}: registered {_when(version.registered_at)}"
                f" at `{version.source or '?'}`"
            )
            if i > 0:
                for change in entry.changes[i - 1]:
                    out.append(f"  - {change.change} `{change.field}`")
        out.append("")
    if has_store and entry.kind == "event":
        out.append(
            f"Stored: {entry.count:,} events, first seen {_when(entry.first_seen)}, "
            f"last seen {_when(entry.last_seen)}."
        )
        if entry.usual_contexts:
            usual = ", ".join(f"`{k}` ({v:.0%})" for k, v in entry.usual_contexts.items())
            out.append(f"Context keys usually present: {usual}.")
        if entry.undocumented_fields:
            out.append(f"Undocumented fields seen: {', '.join(entry.undocumented_fields)}.")
        if entry.unseen_fields:
            out.append(f"Documented fields never seen: {', '.join(entry.unseen_fields)}.")
        if entry.example is not None:
            out += [
                "",
                "Example (PII masked):",
                "",
                "```json",
                dumps(entry.example).decode(),
                "```",
            ]
        out.append("")
    return out


def render_markdown(catalogue: Catalogue) -> str:
    """The catalogue as one Markdown document."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Event catalogue",
        "",
        f"Generated {now}: {len(catalogue.events)} event types, "
        f"{len(catalogue.contexts)} context types.",
        "",
        "## Event types",
        "",
    ]
    for entry in catalogue.events:
        out += _entry_markdown(entry, catalogue.has_store)
    if catalogue.contexts:
        out += ["## Context types", ""]
        for entry in catalogue.contexts:
            out += _entry_markdown(entry, False)
    if catalogue.has_store:
        drift = catalogue.drift
        out += ["## Drift", ""]
        if not catalogue.has_drift:
            out.append("None: every stored event name and field is documented and seen.")
        for name in drift["unregistered"]:
            out.append(f"- `{name}` is stored but never registered")
        for name, fields in drift["undocumented_fields"].items():
            out.append(f"- `{name}`: stored fields not documented: {', '.join(fields)}")
        for name, fields in drift["unseen_fields"].items():
            out.append(f"- `{name}`: documented fields never seen: {', '.join(fields)}")
        out.append("")
    return "\n".join(out)


def _without_pii_examples(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the examples of properties marked ``x-pii`` left out (they may be real)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not any(
        isinstance(p, dict) and p.get("x-pii") and "examples" in p for p in properties.values()
    ):
        return schema
    return {
        **schema,
        "properties": {
            name: (
                {k: v for k, v in prop.items() if k != "examples"}
                if isinstance(prop, dict) and prop.get("x-pii")
                else prop
            )
            for name, prop in properties.items()
        },
    }


def event_schema(entry: TypeEntry) -> dict[str, Any]:
    """A JSON Schema for whole events of this type (envelope plus documented data)."""
    assert entry.current is not None
    return {
        "title": entry.name,
        "description": entry.current.description,
        "type": "object",
        "x-version": entry.current.id,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"const": entry.name},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": _without_pii_examples(entry.current.schema),
            "context": {"type": "object"},
            "meta": {"type": "object"},
        },
        "required": ["name", "timestamp", "data", "context"],
    }


def render_json_schema(catalogue: Catalogue) -> str:
    """One JSON Schema document with a definition per documented event and context type."""
    defs: dict[str, Any] = {}
    for entry in catalogue.events:
        if entry.current is not None:
            defs[entry.name] = event_schema(entry)
    for entry in catalogue.contexts:
        if entry.current is not None:
            defs[f"context:{entry.name}"] = {
                **_without_pii_examples(entry.current.schema),
                "title": entry.name,
                "description": entry.current.description,
                "x-version": entry.current.id,
            }
    document = {
        "$schema": SCHEMA_DIALECT,
        "title": "Event catalogue",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in defs if not name.startswith("context:")],
        "$defs": defs,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
