"""JSON Schemas given with ``register(..., schema=...)``, checked by a real implementation.

The generated field validators (`validate`) check what field specs can say:
types, required and unknown fields, enums. A schema that says more
(``minimum``, ``pattern``, ``oneOf``, nested objects, ``$ref`` ...) is also
compiled by fastjsonschema, which generates Python code for it once per
version, so every keyword it holds is checked at emit.

fastjsonschema implements drafts 4, 6 and 7. A schema in draft 2019-09 or
2020-12 (or one that names no draft: we read it as 2020-12, the dialect the
catalogue writes) is first rewritten into the draft-7 form that means the
same (``prefixItems`` -> ``items``/``additionalItems``, ``dependentRequired``
and ``dependentSchemas`` -> ``dependencies``, and ``$ref`` beside other
keywords -> ``allOf``); a keyword with no such form
(``unevaluatedProperties``, ``minContains``, ``$dynamicRef`` ...) is refused
at registration instead of being ignored. ``format`` is an annotation, as
in 2020-12 and as in field specs (add a ``pattern`` to enforce one);
``default`` never changes the event; ``$ref`` reaches only inside the schema.

A schema problem is reported like the field validator's: the field path
(``data.o.k``), a rule (``wrong_type``, ``missing_field``, ``enum``,
``unknown_field``, or ``schema`` for every other keyword) and a detail that
starts with the keyword. fastjsonschema stops at the first failing keyword,
so an event gets at least one problem for its schema; one already found by
the field validator is not reported twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import fastjsonschema

from .. import diagnostics
from ..exceptions import ImproperlyConfigured
from .model import TypeVersion
from .validate import Problem, Validator, compile_validator, problem

__all__ = ["build_validator", "compile_schema", "needs_schema_validator", "with_schema"]

DRAFT7: Final = "http://json-schema.org/draft-07/schema#"
_OLD_DRAFTS: Final = ("draft-04", "draft-06", "draft-07")
_ANNOTATIONS: Final = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
        "x-pii",
    }
)
# What the generated field validator checks exactly: anything else needs the schema one.
_TOP_LEVEL: Final = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties"}
_PROPERTY: Final = _ANNOTATIONS | {"type", "enum"}
_JSON_TYPES: Final = frozenset(
    {"string", "integer", "number", "boolean", "object", "array", "null"}
)
_UNSUPPORTED: Final = frozenset(
    {
        "unevaluatedProperties",
        "unevaluatedItems",
        "minContains",
        "maxContains",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$anchor",
        "$vocabulary",
    }
)
_ONE_SCHEMA: Final = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
)
_SCHEMA_MAPS: Final = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_LISTS: Final = ("allOf", "anyOf", "oneOf", "prefixItems")
_RULES: Final = {
    "type": "wrong_type",
    "required": "missing_field",
    "enum": "enum",
    "const": "enum",
    "additionalProperties": "unknown_field",
}


def needs_schema_validator(schema: Mapping[str, Any]) -> bool:
    """True when `schema` says more than the generated field validator checks."""
    if not set(schema) <= _TOP_LEVEL or schema.get("type", "object") != "object":
        return True
    if not isinstance(schema.get("additionalProperties", False), bool):
        return True
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        return True
    if not set(schema.get("required", ())) <= set(properties):
        return True
    for prop in properties.values():
        if not isinstance(prop, Mapping) or not set(prop) <= _PROPERTY:
            return True
        types = prop.get("type", [])
        if not set([types] if isinstance(types, str) else types) <= _JSON_TYPES:
            return True
    return False


def compile_schema(schema: Mapping[str, Any], where: str) -> Callable[[Any], None]:
    """fastjsonschema's validator for `schema` (rewritten to draft 7 when needed).

    ImproperlyConfigured for a keyword that cannot be honoured, a remote
    ``$ref``, or a schema fastjsonschema refuses.
    """
    dialect = str(schema.get("$schema", ""))
    if any(draft in dialect for draft in _OLD_DRAFTS):
        definition = _rewritten(schema, "#", where, translate=False)
    else:
        definition = {**_rewritten(schema, "#", where, translate=True), "$schema": DRAFT7}
    handlers = {scheme: _no_remote for scheme in ("http", "https", "file", "urn", "ftp", "")}
    try:
        check: Callable[[Any], None] = fastjsonschema.compile(
            definition, handlers=handlers, use_default=False, use_formats=False
        )
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"{where}: {exc}") from None
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{where}: not a valid JSON Schema: {exc}") from None
    return check


def build_validator(version: TypeVersion, refuse: bool = True) -> Validator:
    """The validator of `version`: its generated field validator, plus its schema's if needed.

    With ``refuse=False`` (versions read back from a store or file) a schema
    that cannot be compiled leaves the field validator alone, with a warning.
    """
    fields = compile_validator(version)
    if not needs_schema_validator(version.schema):
        return fields
    try:
        check = compile_schema(version.schema, f"{version.kind} type {version.name!r} schema")
    except ImproperlyConfigured as exc:
        if refuse:
            raise
        diagnostics.warn_once(
            ("registry.schema", version.id),
            "%s; only its fields are checked (version %s)",
            str(exc),
            version.id,
        )
        return fields
    return with_schema(fields, check)


def with_schema(fields: Validator, check: Callable[[Any], None]) -> Validator:
    """A validator running the field validator, then the schema's (see module docs)."""

    def validate(data: Mapping[str, Any]) -> list[Problem] | None:
        found = fields(data)
        try:
            check(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            extra = _problem(exc)
            if found and extra["rule"] != "schema" and extra["field"].count(".") <= 1:
                return found  # top-level type/required/enum/unknown: the fields reported it
            found = [*(found or []), extra]
        except Exception as exc:  # data JSON Schema cannot describe (e.g. non-str keys)
            found = [*(found or []), problem("schema", "data", f"cannot be checked: {exc!r}")]
        return found

    return validate


def _problem(exc: fastjsonschema.JsonSchemaValueException) -> Problem:
    path = ".".join(str(part) for part in (exc.path or ["data"]))
    message = str(exc.message)
    if exc.name and message.startswith(str(exc.name)):
        message = message[len(str(exc.name)) :].lstrip()
    rule = exc.rule or "schema"
    return problem(_RULES.get(rule, "schema"), path, f"{rule}: {message}")


def _no_remote(uri: str) -> Any:
    raise ImproperlyConfigured(
        f"$ref {uri!r} points outside the schema; put what it refers to under $defs"
    )


def _rewritten(node: Any, path: str, where: str, translate: bool) -> Any:
    """A copy of the schema `node` in draft-7 form (see module docs)."""
    if not isinstance(node, Mapping):
        return node  # true/false schemas, and values the walk does not reach
    unsupported = sorted(_UNSUPPORTED & set(node)) if translate else []
    if unsupported:
        raise ImproperlyConfigured(
            f"{where}: {unsupported[0]!r} at {path} is not supported (fastjsonschema "
            "implements JSON Schema drafts 4, 6 and 7); the schema is refused rather than "
            "the keyword ignored"
        )
    out: dict[str, Any] = {}
    for key, value in node.items():
        at = f"{path}/{key}"
        if key in _ONE_SCHEMA:
            out[key] = _rewritten(value, at, where, translate)
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {k: _rewritten(v, f"{at}/{k}", where, translate) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_rewritten(v, f"{at}/{i}", where, translate) for i, v in enumerate(value)]
        elif key == "items":
            out[key] = (
                [_rewritten(v, f"{at}/{i}", where, translate) for i, v in enumerate(value)]
                if isinstance(value, list)
                else _rewritten(value, at, where, translate)
            )
        elif key in ("dependencies", "dependentSchemas") and isinstance(value, Mapping):
            out[key] = {
                k: v if isinstance(v, list) else _rewritten(v, f"{at}/{k}", where, translate)
                for k, v in value.items()
            }
        else:
            out[key] = value
    if translate:
        _to_draft7(out)
    stay = _ANNOTATIONS | {"$defs", "definitions"}  # refs resolve against where these are
    if "$ref" in out and len(set(out) - stay) > 1:
        # Draft 7 ignores the keywords beside $ref; 2019-09 on, and the writer, mean both.
        ref = {"$ref": out.pop("$ref")}
        rest = {k: v for k, v in out.items() if k not in stay}
        out = {k: v for k, v in out.items() if k in stay}
        out["allOf"] = [ref, rest]
    return out


def _to_draft7(node: dict[str, Any]) -> None:
    """Rewrite 2019-09/2020-12 keywords of one schema object in place."""
    if "prefixItems" in node:
        rest = node.pop("items", None)
        node["items"] = node.pop("prefixItems")
        if rest is not None:
            node["additionalItems"] = rest
    dependencies: dict[str, Any] = dict(node.get("dependencies") or {})
    for key in ("dependentRequired", "dependentSchemas"):
        value = node.pop(key, None)
        for name, rule in value.items() if isinstance(value, Mapping) else ():
            before = dependencies.get(name)
            if before is None:
                dependencies[name] = rule
            else:  # both kinds for one property: a schema that requires and checks
                parts = [{"required": r} if isinstance(r, list) else r for r in (before, rule)]
                dependencies[name] = {"allOf": parts}
    if dependencies:
        node["dependencies"] = dependencies
