"""How emit builds and sends events: a path built for the configuration, and the general one.

A tracker's configuration (backends, processors, documented types, size
limit, locator, envelope) changes rarely; events are emitted all the time. So
instead of re-reading its configuration for every event, a tracker builds an
emit function for the configuration it has now (`build`), and builds a new one
whenever that configuration changes: its `RoutingBackend` and its `Registry`
report every change, and its own setters and `close` rebuild too (see
`Tracker._replan`, which also decides when the general path is all there is).

What the built function still checks per event is the event's own input: a
non-empty ``str`` name and a ``dict`` of data. Any other input goes to the
tracker's general path, which repairs or refuses it and routes the event
through `RoutingBackend.send`; so does every event of a configuration this
path does not cover (strict mode, the four-key Open edX envelope, an Open
edX-style locator, a closed tracker). Backends are looked up on every event
(their ``send`` too), so a backend patched in a test is still the one called.

On CPython 3.11 every attribute read and every Python call costs tens of
instructions; this path reads the configuration from closure cells and calls
at most three functions of ours per event (id, backend send, and the checker
when types are documented), which is what keeps emit near the hand-written
floor (see README, Performance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from . import serialization
from .backends.routing import RoutingBackend
from .event import checked_data, checked_name, new_event_id
from .locator import ContextView, _LayeredLocator
from .registry.checker import EventChecker

Emit = Callable[[Any, Any], None]

_now = datetime.now


# A non-empty stand-in for the processors of a RoutingBackend subclass that
# routes in its own way: every event then goes through its `send`.
_ROUTE_ALWAYS: Final = (True,)


def build(
    *,
    locator: _LayeredLocator,
    routing: RoutingBackend,
    checker: EventChecker,
    general: Emit,
) -> Emit:
    """The emit function for this configuration of a tracker.

    `general` handles input to repair or refuse.
    """
    read_stack = locator.stack_reader()
    checked = checker.active()
    meta_if_valid = checker.meta_if_valid
    check_turned_down = checker.check_turned_down

    route = routing.send  # processors, then every backend; never raises
    fan_out = routing.send_to_backends  # every backend, each failure counted; never raises
    failed = routing.backend_failed
    backends = routing.backends  # a change to it builds a new plan
    first = next(iter(backends), "")
    lone = backends[first] if len(backends) == 1 else None
    # Read per event: the list can grow in place (register_processor).
    processors: Sequence[Any] = routing.processors
    if any(
        getattr(type(routing), method) is not getattr(RoutingBackend, method)
        for method in ("send", "send_to_backends", "process_event")
    ):
        processors = _ROUTE_ALWAYS  # a subclass decides how it routes

    def emit(name: Any = None, data: Any = None) -> None:
        if type(name) is not str or not name or type(data) is not dict:
            general(name, data)  # input to repair or refuse
            return
        view = read_stack()._combined  # the merged view, cached on the task's context stack
        if view is None or view.version != locator._process_version:
            view = locator.view()
        now = _now(UTC)
        if checked and (meta := meta_if_valid(name, data, view)) is not None:
            # Built with its meta in one go: adding a sixth key later resizes the dict.
            event = {
                "id": new_event_id(now),
                "name": name,
                "timestamp": now,
                "data": data,
                "context": view.merged.copy(),
                "meta": meta,
            }
        else:
            event = {
                "id": new_event_id(now),
                "name": name,
                "timestamp": now,
                "data": data,
                "context": view.merged.copy(),
            }
            if checked:  # a problem, an undocumented type or a size limit: in full
                check_turned_down(event, view)
        if processors:
            route(event)
        elif lone is not None:  # the common case: one backend, called directly
            try:
                lone.send(event)
            except Exception:
                failed(first)
        else:
            fan_out(event)  # never raises

    return emit


def build_event(
    name: object,
    data: object,
    *,
    locator: Any,
    envelope: str,
    strict: bool,
    checker: EventChecker,
) -> dict[str, Any]:
    """Build (and check) one event in the general case: any locator, envelope or input.

    A non-string name or non-mapping data is repaired (or, with `strict`,
    refused with `EventError`); see `event.checked_name`, `event.checked_data`.
    """
    if type(name) is not str or not name:
        name = checked_name(name, strict)
    if data is None:
        data = {}
    elif type(data) is not dict:
        data = checked_data(name, data, strict)
    view: ContextView | None = None
    if isinstance(locator, _LayeredLocator):
        view = locator.view()
        context = view.merged.copy()
    else:
        context = resolve_context(locator)
    now = _now(UTC)
    if envelope == "full":
        event = {
            "id": new_event_id(now),
            "name": name,
            "timestamp": now,
            "data": data,
            "context": context,
        }
    else:
        event = {"name": name, "timestamp": now, "data": data, "context": context}
    if checker.active():
        if view is None:  # an Open edX-style locator (only get()): a view for this event
            view = ContextView(0, resolve_context(locator), tuple(locator.get()))
        checker.check(event, view)
    if strict:
        serialization.check(event)
    return event


def resolve_context(locator: Any) -> dict[str, Any]:
    """A new dict of every context `locator` holds, later ones winning."""
    if isinstance(locator, _LayeredLocator):
        return locator.resolve()
    merged: dict[str, Any] = {}
    for ctx in locator.get().values():
        merged.update(ctx)
    return merged
