"""Build trackers, backends and processors from configuration trees.

A component is a mapping ``{"ENGINE": "dotted.path.Class", "OPTIONS": {...}}``
(lower-case ``engine``/``options`` also work); a backend may add
``"DELIVERY"``, how the delivery worker wraps it (`delivery.configure`).
Option values that are themselves components are built first, recursively,
as are the ``backends`` mapping and ``processors`` list of a routing
backend, and components found at any depth of other mappings and lists in
``OPTIONS``, so the Open edX ``EVENT_TRACKING_BACKENDS`` tree and a TOML
file go through the same code.

Every error is an `ImproperlyConfigured` whose message starts with the path in
the tree (``backends.tracking_logs.OPTIONS.backends.local``) and says what
to fix: a class that cannot be imported, an unknown option, a wrong type.
"""

from __future__ import annotations

import inspect
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._dotted import import_object
from .backends.logger import LoggerBackend
from .exceptions import ImproperlyConfigured
from .registry import POLICIES, Registry, load_catalogue
from .tracker import ENVELOPES, Tracker

__all__ = [
    "build_backends",
    "build_default_tracker",
    "build_processors",
    "build_tree",
    "import_object",
    "instantiate",
    "load_tracker",
    "tracker_from_config",
]


def _is_component(value: Any) -> bool:
    return isinstance(value, Mapping) and ("ENGINE" in value or "engine" in value)


def instantiate(spec: Mapping[str, Any], path: str = "", *, backend_name: str | None = None) -> Any:
    """Build the object a component mapping describes (recursively); see module docs.

    A ``DELIVERY`` key wraps the object in the delivery worker as it says.
    `backend_name` marks a component in a backend position (a ``backends``
    mapping) under that name: there, a backend that declares
    ``delivery_defaults`` is wrapped even without the key (`delivery.configure`).
    """
    if not isinstance(spec, Mapping):
        raise ImproperlyConfigured(
            f"{path or '<root>'}: expected a mapping with ENGINE and OPTIONS, "
            f"not {type(spec).__name__}"
        )
    engine_key = "ENGINE" if "ENGINE" in spec else "engine"
    options_key = "OPTIONS" if engine_key == "ENGINE" else "options"
    delivery_key = "DELIVERY" if engine_key == "ENGINE" else "delivery"
    unknown = set(spec) - {engine_key, options_key, delivery_key}
    if engine_key not in spec:
        raise ImproperlyConfigured(f"{path or '<root>'}: missing ENGINE (a dotted class path)")
    if unknown:
        raise ImproperlyConfigured(
            f"{path}: unknown keys {sorted(unknown)}; a component has only "
            f"{engine_key}, {options_key} and (for a backend) {delivery_key}"
        )
    moved: dict[str, Any] = {}
    built = _construct(spec, path, engine_key, options_key, moved)
    if delivery_key not in spec and backend_name is None and not moved:
        return built
    from .delivery.configure import NO_SETTING, carry_over, deliver

    try:
        setting = carry_over(moved, spec.get(delivery_key, NO_SETTING), f"{path}.{options_key}")
        return deliver(built, setting, backend_name)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{path}.{delivery_key}: {exc}") from exc


def _construct(
    spec: Mapping[str, Any], path: str, engine_key: str, options_key: str, moved: dict[str, Any]
) -> Any:
    factory = import_object(spec[engine_key], f"{path}.{engine_key}")
    options = spec.get(options_key) or {}
    opath = f"{path}.{options_key}"
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(f"{opath}: must be a mapping, not {type(options).__name__}")
    built = {key: _build_option(key, value, f"{opath}.{key}") for key, value in options.items()}
    if hasattr(factory, "delivery_defaults"):  # our backends' batching options of 5.0.0
        from .delivery.configure import MOVED_OPTIONS

        moved.update((key, built.pop(key)) for key in MOVED_OPTIONS if key in built)
    _check_options(factory, built, opath)
    try:
        return factory(**built)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"{path}: {exc}") from exc
    except (TypeError, ValueError, OSError) as exc:
        raise ImproperlyConfigured(
            f"{path}: {spec[engine_key]} rejected its options: {exc}"
        ) from exc


def _build_option(key: str, value: Any, path: str) -> Any:
    if key == "backends" and isinstance(value, Mapping) and not _is_component(value):
        return build_backends(value, path)
    if key == "processors" and isinstance(value, list):
        return build_processors(value, path)
    return build_tree(value, path)


def build_tree(value: Any, path: str) -> Any:
    """`value` with every component in it built, at any depth of mappings and lists.

    Mappings (other than components) come back as new dicts and lists as new
    lists, as Open edX builds them; any other value is returned as it is.
    """
    if _is_component(value):
        return instantiate(value, path)
    if isinstance(value, Mapping):
        return {key: build_tree(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [build_tree(item, f"{path}.{i}") for i, item in enumerate(value)]
    return value


def build_backends(specs: Mapping[str, Any], path: str = "backends") -> dict[str, Any]:
    """Build a name -> backend mapping from name -> component mappings (delivery included)."""
    if not isinstance(specs, Mapping):
        raise ImproperlyConfigured(f"{path}: must be a mapping of name to backend")
    return {
        name: instantiate(spec, f"{path}.{name}", backend_name=str(name))
        for name, spec in specs.items()
    }


def build_processors(specs: Any, path: str = "processors") -> list[Any]:
    """Build a list of processors from a list of component mappings."""
    if not isinstance(specs, list | tuple):
        raise ImproperlyConfigured(f"{path}: must be a list of processors")
    return [instantiate(spec, f"{path}.{i}") for i, spec in enumerate(specs)]


def _check_options(factory: Any, options: Mapping[str, Any], path: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {
        name: p
        for name, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    if not takes_any:
        unknown = sorted(set(options) - set(named))
        if unknown:
            raise ImproperlyConfigured(
                f"{path}: unknown option(s) {unknown} for {factory.__name__}; "
                f"valid options: {sorted(named)}"
            )
    missing = [
        name
        for name, p in named.items()
        if p.default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        raise ImproperlyConfigured(f"{path}: missing required option(s) {missing}")
    try:
        target = factory.__init__ if inspect.isclass(factory) else factory
        hints = typing.get_type_hints(target)
    except Exception:
        return
    for name, value in options.items():
        hint = hints.get(name)
        if hint is not None and not _matches(value, hint):
            raise ImproperlyConfigured(
                f"{path}.{name}: expected {_describe(hint)}, got {type(value).__name__} {value!r}"
            )


def _matches(value: Any, hint: Any) -> bool:
    """A shallow check of `value` against a type hint; unknown hints pass."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool or hint is str:
        return isinstance(value, hint)
    check = origin if origin is not None else hint
    if isinstance(check, type):
        try:
            return isinstance(value, check)
        except TypeError:
            return True
    return True


def _describe(hint: Any) -> str:
    """Readable text for a type hint: ``int | None``, ``one of 'drop', 'truncate'``."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_describe(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if origin is None and isinstance(getattr(hint, "__name__", None), str):
        return str(hint.__name__)
    return str(hint).replace("typing.", "")


_TRACKER_KEYS = {"backends", "processors", "tracker", "registry"}
_TRACKER_OPTIONS = {"envelope", "strict", "context_locator", "validation", "max_event_size"}
_REGISTRY_OPTIONS = {"catalogue"}


def tracker_from_config(
    config: Mapping[str, Any], path: str = "", base_dir: str | os.PathLike[str] = "."
) -> Tracker:
    """Build a Tracker from ``{"backends", "processors", "tracker", "registry"}`` sections.

    ``registry.catalogue`` lists TOML catalogue files (relative to `base_dir`)
    whose event and context types are registered on the new tracker.
    """
    prefix = f"{path}." if path else ""
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(
            f"{path or '<root>'}: expected a mapping with backends, processors and tracker "
            f"sections, not {type(config).__name__}"
        )
    unknown = set(config) - _TRACKER_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"{path or '<root>'}: unknown section(s) {sorted(unknown)}; "
            f"expected {sorted(_TRACKER_KEYS)}"
        )
    settings = config.get("tracker") or {}
    if not isinstance(settings, Mapping):
        raise ImproperlyConfigured(f"{prefix}tracker: must be a table of tracker options")
    bad = set(settings) - _TRACKER_OPTIONS
    if bad:
        raise ImproperlyConfigured(
            f"{prefix}tracker: unknown option(s) {sorted(bad)}; valid: {sorted(_TRACKER_OPTIONS)}"
        )
    envelope = settings.get("envelope", "full")
    if envelope not in ENVELOPES:
        raise ImproperlyConfigured(
            f"{prefix}tracker.envelope: must be one of {list(ENVELOPES)}, not {envelope!r}"
        )
    strict = settings.get("strict", False)
    if not isinstance(strict, bool):
        raise ImproperlyConfigured(f"{prefix}tracker.strict: must be true or false")
    locator = None
    if "context_locator" in settings:
        locator = import_object(settings["context_locator"], f"{prefix}tracker.context_locator")()
    validation = settings.get("validation", "warn")
    if validation not in POLICIES:
        raise ImproperlyConfigured(
            f"{prefix}tracker.validation: must be one of {list(POLICIES)}, not {validation!r}"
        )
    max_event_size = settings.get("max_event_size")
    if max_event_size is not None and (
        isinstance(max_event_size, bool)
        or not isinstance(max_event_size, int)
        or max_event_size < 1
    ):
        raise ImproperlyConfigured(f"{prefix}tracker.max_event_size: must be a positive integer")
    registry = _registry_from_config(config.get("registry"), f"{prefix}registry", Path(base_dir))
    backends = build_backends(config.get("backends") or {}, f"{prefix}backends")
    processors = build_processors(config.get("processors") or [], f"{prefix}processors")
    try:
        return Tracker(
            backends,
            context_locator=locator,
            processors=processors,
            envelope=envelope,
            strict=strict,
            registry=registry,
            validation=validation,
            max_event_size=max_event_size,
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"{path or '<root>'}: {exc}") from exc


def _registry_from_config(section: Any, path: str, base_dir: Path) -> Registry:
    registry = Registry()
    if section is None:
        return registry
    if not isinstance(section, Mapping):
        raise ImproperlyConfigured(f"{path}: must be a table with a 'catalogue' list")
    bad = set(section) - _REGISTRY_OPTIONS
    if bad:
        raise ImproperlyConfigured(
            f"{path}: unknown option(s) {sorted(bad)}; valid: {sorted(_REGISTRY_OPTIONS)}"
        )
    files = section.get("catalogue", [])
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ImproperlyConfigured(f"{path}.catalogue: must be a list of file paths")
    for file in files:
        load_catalogue(base_dir / file, registry)
    return registry


def load_tracker(file: str | os.PathLike[str]) -> Tracker:
    """Build a Tracker from a TOML file (see README, "Configuration")."""
    target = Path(file)
    try:
        with target.open("rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise ImproperlyConfigured(f"{target}: configuration file not found") from None
    except OSError as exc:
        raise ImproperlyConfigured(f"{target}: cannot read configuration: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ImproperlyConfigured(f"{target}: invalid TOML: {exc}") from exc
    try:
        return tracker_from_config(config, base_dir=target.parent)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"{target}: {exc}") from exc


def build_default_tracker() -> Tracker:
    """The default tracker: from ``$EVENTTRACKING_CONFIG`` (TOML) if set, else JSON to the
    ``tracking`` logger (the Open edX convention; events up to 50,000 characters)."""
    path = os.environ.get("EVENTTRACKING_CONFIG")
    if path:
        return load_tracker(path)
    return Tracker({"tracking": LoggerBackend(name="tracking", max_event_size=50_000)})


# -- Open edX's event-bus toggle (``pip install 'event-tracking[openedx]'``) ---------
#
# .. toggle_name: SEND_TRACKING_EVENT_EMITTED_SIGNAL
# .. toggle_implementation: SettingToggle
# .. toggle_default: False
# .. toggle_description: When true, EventBusRoutingBackend publishes the events named in
#   EVENT_BUS_TRACKING_LOGS as openedx-events' TRACKING_EVENT_EMITTED signal, which the
#   configured event bus plugin carries to its consumers.
# .. toggle_use_cases: opt_in
# .. toggle_creation_date: 2023-10-26
#
# Open edX's name for the event-bus toggle; built on first access (`_toggles`),
# so this module imports without Django and edx-toggles.

if typing.TYPE_CHECKING:
    from ._toggles import SEND_TRACKING_EVENT_EMITTED_SIGNAL as SEND_TRACKING_EVENT_EMITTED_SIGNAL
else:

    def __getattr__(name: str) -> Any:
        if name != "SEND_TRACKING_EVENT_EMITTED_SIGNAL":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import _toggles

        return _toggles.SEND_TRACKING_EVENT_EMITTED_SIGNAL
