"""Track application events and hand them to backends (the Open edX public API).

Usage::

    from eventtracking import tracker
    t = tracker.get_tracker()
    t.enter_context('outer', {'user_id': 10938})
    t.emit('navigation.request', {'url': 'http://www.edx.org/some/path/1'})

This module is the one home of global state: the named trackers and the
lazily built default tracker.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal

from . import _state, diagnostics, serialization
from ._copies import ATOMS, isolated_copy
from ._state import DEFAULT_TRACKER_NAME, TRACKERS
from .backends.routing import COPY_ALL, Processor, RoutingBackend
from .event import UNKNOWN_EVENT_TYPE, checked_data, checked_name, new_event_id
from .locator import ContextView, DefaultContextLocator, Scope, _LayeredLocator
from .registry.checker import EventChecker
from .registry.model import POLICIES, Policy, TypeVersion
from .registry.registry import Registry, caller_source

_datetime: Final = datetime
_now: Final = datetime.now

__all__ = [
    "DEFAULT_TRACKER_NAME",
    "TRACKERS",
    "UNKNOWN_EVENT_TYPE",
    "Tracker",
    "emit",
    "get_tracker",
    "register_tracker",
    "resolve_context",
    "set_default_factory",
]

Envelope = Literal["full", "openedx"]
ENVELOPES: Final = ("full", "openedx")

_anonymous = itertools.count(1)


class Tracker:
    """Build events from a name, data and the current contexts, and route them to backends.

    `backends` maps names to backends (objects with `send(event)`), called in
    sorted-name order; `processors` run first (see `RoutingBackend`).
    `context_locator` defaults to a `DefaultContextLocator`.

    Events are exactly Open edX's by default (``envelope="openedx"``): the
    four keys ``name`` (``'unknown'`` when empty; anything else kept as
    given), ``timestamp`` (aware UTC), ``data`` (``data or {}``, whatever its
    type) and ``context``. ``envelope="full"`` adds ``id``, a time-ordered
    UUIDv7, and the documentation versions (``meta``) of documented types.

    ``strict=True`` (for tests) makes emit raise `EventError` for a non-string
    name, non-mapping data or a value JSON cannot encode.

    `registry` holds documented event and context types (see `register`);
    ``validation`` (``"warn"``, ``"strict"`` or ``"off"``) says what happens
    when an event breaks its type, and `max_event_size` (bytes of JSON) adds a
    size check. A tracker whose registry is empty validates nothing.

    Thread-safe; emit never raises because of a backend.
    """

    def __init__(
        self,
        backends: Mapping[str, Any] | None = None,
        context_locator: Any = None,
        processors: list[Processor] | None = None,
        *,
        envelope: Envelope = "openedx",
        strict: bool = False,
        registry: Registry | None = None,
        validation: Policy = "warn",
        max_event_size: int | None = None,
    ) -> None:
        if validation not in POLICIES:
            raise ValueError(f"validation must be one of {POLICIES}, not {validation!r}")
        if max_event_size is not None and (
            isinstance(max_event_size, bool) or not isinstance(max_event_size, int)
        ):
            raise TypeError(f"max_event_size must be an int or None, not {max_event_size!r}")
        if envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {ENVELOPES}, not {envelope!r}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, not {type(strict).__name__}")
        if context_locator is not None and not callable(getattr(context_locator, "get", None)):
            raise ValueError("context_locator must have a callable 'get' method")
        self._closed = False
        self._close_lock = threading.Lock()
        self.routing_backend = RoutingBackend(backends=backends, processors=processors)
        self.context_locator = (
            context_locator if context_locator is not None else DefaultContextLocator()
        )
        self._envelope: Envelope = envelope
        self._strict = strict
        self.registry = registry if registry is not None else Registry()
        self._checker = EventChecker(
            self.registry, validation, max_event_size, annotate=envelope == "full"
        )
        self._resnapshot()

    def _resnapshot(self) -> None:
        """Gather what emit reads into one tuple; every setter calls this after a change.

        One tuple unpacked per event costs less than reading seven attributes.
        A subclass may set a setting before `Tracker.__init__` has run: then
        there is nothing to gather yet, and `__init__` does it at its end.
        """
        # getattr, never self.__dict__: a materialised instance dict would
        # slow every attribute read on the emit path.
        checker = getattr(self, "_checker", None)
        if checker is None:
            return
        self._snapshot = (
            self._closed,
            self._strict,
            self._read_stack,
            self._locator,
            self._envelope == "full",
            checker,
            self._routing,
        )

    # -- the Open edX surface -------------------------------------------------

    @property
    def backends(self) -> dict[str, Any]:
        """The backends, by name, in the order they are called."""
        return self.routing_backend.backends

    @property
    def processors(self) -> list[Processor]:
        """The processors, in the order they run."""
        return self.routing_backend.processors

    @property
    def located_context(self) -> MutableMapping[str, Mapping[str, Any]]:
        """The contexts of the current thread or task, as a live mapping of name to context."""
        located: MutableMapping[str, Mapping[str, Any]] = self.context_locator.get()
        return located

    def get_backend(self, name: str) -> Any:
        """The backend configured as `name`; KeyError if there is none."""
        return self.backends[name]

    def emit(self, name: Any = None, data: Any = None) -> None:
        """Build an event from `name`, `data` and the current contexts, and send it.

        A missing or empty name becomes ``'unknown'``; None data becomes
        ``{}``; anything else is kept as given, as in Open edX (in strict mode
        a non-string name or non-mapping data raises `EventError`). Never
        raises because of a backend; RuntimeError after `close()`.
        """
        closed, strict, read_stack, locator, full, checker, routing = self._snapshot
        if closed:
            raise RuntimeError("this tracker is closed; create a new Tracker to emit again")
        if strict:
            name = checked_name(name, True)
            data = {} if data is None else checked_data(name, data, True)
        # Read through the module global, as Open edX does: tests patch
        # eventtracking.tracker.datetime to fix the time. Unpatched, the bound
        # method is called directly (binding it costs more than the check).
        now = _now(UTC) if datetime is _datetime else datetime.now(UTC)
        processors = routing._processors
        # What the backends may not share with the caller and the contexts
        # (Open edX deep-copied every event): nothing, the data, or all.
        copies = COPY_ALL if processors else routing._copies
        view: ContextView | None = None
        if read_stack is not None:
            # The merged contexts, cached on the task's stack until a context changes.
            view = read_stack()._combined
            if view is None or view.version != locator._process_version:
                view = locator.view()
            if copies == COPY_ALL:
                context = view.merged.copy()
                for key in view.nested:  # values that are not atoms (usually none)
                    context[key] = isolated_copy(context[key])
            else:
                # The merged dict is never changed once built; backends that all
                # leave events unchanged may share it (no copy per event).
                context = view.merged if routing.shares_context else view.merged.copy()
        else:  # an Open edX-style locator: only get()
            context = resolve_context(locator)
            if copies == COPY_ALL:
                context = isolated_copy(context)
        if copies:
            if type(data) is dict:  # the usual flat dict: copied in C, values replaced as needed
                data = data.copy()
                for key, value in data.items():
                    if type(value) not in ATOMS:
                        data[key] = isolated_copy(value)
            elif type(data) not in ATOMS:
                data = isolated_copy(data)
        if full:
            event = {
                "id": new_event_id(now),
                "name": name or UNKNOWN_EVENT_TYPE,
                "timestamp": now,
                "data": data or {},
                "context": context,
            }
        else:
            event = {
                "name": name or UNKNOWN_EVENT_TYPE,
                "timestamp": now,
                "data": data or {},
                "context": context,
            }
        if checker.on:
            if view is None:
                view = ContextView(0, context, tuple(locator.get()))
            checker.check(event, view)
        if strict:
            serialization.check(event)
        if routing.direct and not processors:
            # What routing.send does here (the copies made above), without its two calls.
            for route, backend in routing._routes:
                try:
                    backend.send(event)
                except Exception as exc:
                    routing.backend_failed(route, event, exc)
        elif copies and routing.standard:
            routing._send_owned(event)  # already copied: routing.send would copy again
        else:
            routing.send(event)

    @property
    def routing_backend(self) -> RoutingBackend:
        """The root of the routing tree: processors, then backends."""
        return self._routing

    @routing_backend.setter
    def routing_backend(self, routing: RoutingBackend) -> None:
        self._routing = routing
        self._resnapshot()

    @property
    def context_locator(self) -> Any:
        """Where the contexts live (a `DefaultContextLocator` unless given)."""
        return self._locator

    @context_locator.setter
    def context_locator(self, locator: Any) -> None:
        if not callable(getattr(locator, "get", None)):
            raise ValueError("context_locator must have a callable 'get' method")
        self._locator = locator
        self._layered = isinstance(locator, _LayeredLocator)
        self._read_stack = locator.stack_reader() if self._layered else None
        self._resnapshot()

    @property
    def envelope(self) -> Envelope:
        """``"full"`` (with ``id``) or ``"openedx"`` (the four Open edX keys)."""
        return self._envelope

    @envelope.setter
    def envelope(self, envelope: Envelope) -> None:
        if envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {ENVELOPES}, not {envelope!r}")
        self._envelope = envelope
        self._checker.annotate = envelope == "full"  # the four Open edX keys carry no meta
        self._resnapshot()

    @property
    def strict(self) -> bool:
        """True when emit raises `EventError` instead of repairing input."""
        return self._strict

    @strict.setter
    def strict(self, strict: bool) -> None:
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, not {type(strict).__name__}")
        self._strict = strict
        self._resnapshot()

    # -- documentation of event and context types ---------------------------------

    def register(
        self,
        name: str,
        description: str = "",
        fields: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TypeVersion:
        """Document event type `name` next to the code that emits it.

        `fields` maps each data field to a description, or to a dict with
        ``description, type, required, enum, format, examples, pii``; or pass
        ``schema=`` (a JSON Schema). Also: ``policy=`` (this type's validation
        policy) and ``additional_fields=True``. Registering changed
        documentation creates a new version; the same documentation is the
        same version (and id) in every process. Returns the current version.
        """
        options.setdefault("source", caller_source(1))
        return self.registry.register(name, description, fields, **options)

    def register_context(
        self,
        name: str,
        description: str = "",
        fields: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TypeVersion:
        """Document context type `name` (same arguments as `register`)."""
        options.setdefault("source", caller_source(1))
        return self.registry.register(name, description, fields, kind="context", **options)

    def register_class(self, cls: type, **options: Any) -> TypeVersion:
        """Document an event type from a dataclass or TypedDict (see `Registry.register_class`)."""
        options.setdefault("source", caller_source(1))
        return self.registry.register_class(cls, **options)

    def resolve_context(self) -> dict[str, Any]:
        """A new dict holding the union of all entered contexts; later ones win."""
        return resolve_context(self._locator)

    def enter_context(
        self,
        name: str,
        ctx: Mapping[str, Any],
        scope: Scope = "task",
        *,
        description: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Enter context `name`; events emitted afterwards carry its keys.

        ``scope="task"`` (default) limits it to this thread or asyncio task;
        ``scope="process"`` shares it with every thread and task. With
        `description` or `fields`, the context type is documented (as
        `register_context` does); a documented context is validated on entry.
        """
        if description is not None or fields is not None:
            self.registry.register(
                name, description or "", fields, kind="context", source=caller_source(1)
            )
        if self._checker.active() and isinstance(ctx, Mapping):
            self._checker.check_context(name, ctx)
        if self._layered:
            self.context_locator.enter(name, ctx, scope)
        elif scope != "task":
            raise ValueError(f"{type(self.context_locator).__name__} has no {scope!r} scope")
        else:
            self.context_locator.get()[name] = ctx

    def exit_context(self, name: str, scope: Scope = "task") -> None:
        """Leave context `name`, in any order; KeyError if it was not entered."""
        if self._layered:
            self.context_locator.exit(name, scope)
        else:
            del self.context_locator.get()[name]

    @contextmanager
    def context(
        self,
        name: str | Mapping[str, Any],
        ctx: Mapping[str, Any] | None = None,
        scope: Scope = "task",
    ) -> Iterator[None]:
        """Apply a context for the duration of a ``with`` block, even if it raises.

        Accepts ``context(name, ctx)`` and the one-argument ``context(ctx)``.
        A context that shadowed an earlier one of the same name restores it.
        """
        if ctx is None:
            if not isinstance(name, Mapping):
                raise TypeError("context() takes (name, ctx) or a single mapping (ctx)")
            key, value = f"anonymous-{next(_anonymous)}", name
        elif not isinstance(name, str):
            raise TypeError(f"context name must be a str, not {type(name).__name__}")
        else:
            key, value = name, ctx
        if self._layered:
            saved = self.context_locator.save(key, scope)
            self.enter_context(key, value, scope)
            try:
                yield
            finally:
                if saved is None:
                    self.exit_context(key, scope)
                else:
                    self.context_locator.restore(key, saved, scope)
            return
        previous = self.context_locator.get().get(key)
        self.enter_context(key, value, scope)
        try:
            yield
        finally:
            if previous is None:
                self.exit_context(key, scope)
            else:
                self.enter_context(key, previous, scope)

    # -- lifecycle --------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every backend has written what it holds; False if `timeout` ran out."""
        return self.routing_backend.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then close every backend. Idempotent; emit afterwards raises RuntimeError."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._resnapshot()
        self.routing_backend.flush(timeout)
        self.routing_backend.close()

    async def aflush(self, timeout: float = 10.0) -> bool:
        """`flush` for asyncio code: waits in a worker thread, never blocking the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        """`close` for asyncio code: waits in a worker thread, never blocking the event loop."""
        await asyncio.to_thread(self.close, timeout)

    @property
    def validation(self) -> Policy:
        """The tracker-wide validation policy: ``warn``, ``strict`` or ``off``."""
        return self._checker.policy

    @property
    def max_event_size(self) -> int | None:
        """The size limit (bytes of JSON) checked at emit, or None."""
        return self._checker.max_event_size

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Self-metrics: repaired events, backend and processor errors, drops.

        What this tracker's own validation (``validation.<rule>``) and routing
        tree (``backend.<name>.errors``, ``processor.errors``,
        ``logger.oversize_*``, ``sampler.dropped``) count is this tracker's
        alone, so two trackers never share those counts; the other counters
        are process-wide (`eventtracking.diagnostics.snapshot`
        has the process totals of all of them). Backends behind a delivery
        worker add theirs as ``delivery.<name>.<metric>``.
        """
        stats = diagnostics.snapshot()
        for name in diagnostics.owned_names():
            stats.pop(name, None)
        pending: list[Any] = [self.routing_backend, self._checker]
        seen: set[int] = set()
        while pending:  # nested routing backends form trees (or, by mistake, cycles)
            node = pending.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            counters = getattr(node, "counters", None)
            if isinstance(counters, diagnostics.Counters):
                for name, count in counters.snapshot().items():
                    stats[name] = stats.get(name, 0) + count
            collect = getattr(node, "delivery_stats", None)
            if callable(collect):
                stats.update(collect())
            children = getattr(node, "backends", None)
            if isinstance(children, Mapping):
                pending.extend(children.values())
            processors = getattr(node, "processors", None)
            if isinstance(processors, list):
                pending.extend(processors)
            wrapped = getattr(node, "backend", None)  # a delivery worker's backend
            if wrapped is not None and callable(getattr(wrapped, "send", None)):
                pending.append(wrapped)
        return stats


# -- named trackers: their state lives in _state ---------------------------------


def register_tracker(tracker: Tracker, name: str = DEFAULT_TRACKER_NAME) -> None:
    """Make `tracker` available as `get_tracker(name)`; the default name is the default tracker."""
    TRACKERS[name] = tracker


def get_tracker(name: str = DEFAULT_TRACKER_NAME) -> Tracker:
    """The tracker registered as `name`; KeyError if none is, as in Open edX.

    `eventtracking.track.get_tracker` (and the package root's) builds the
    default tracker on first use instead.
    """
    return TRACKERS[name]


def set_default_factory(factory: Callable[[], Tracker]) -> None:
    """Choose how `eventtracking.track.get_tracker` builds the default tracker on first use."""
    _state.default_factory = factory


def emit(name: Any = None, data: Any = None) -> None:
    """Emit on the default tracker; KeyError if none is registered, as in Open edX."""
    return get_tracker().emit(name=name, data=data)


def resolve_context(locator: Any) -> dict[str, Any]:
    """A new dict of every context `locator` holds, later ones winning."""
    if isinstance(locator, _LayeredLocator):
        return locator.resolve()
    merged: dict[str, Any] = {}
    for ctx in locator.get().values():
        merged.update(ctx)
    return merged
