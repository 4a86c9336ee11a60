"""Route events through a chain of processors to several backends (Open edX semantics).

Processors run in order; each returns the event to pass on (None means
unchanged). `EventEmissionExit` drops the event; any other exception is
logged, counted, and the chain goes on with the event as the failing processor
left it (changes it made in place before raising are kept). Backends are
called in sorted-name order, always, even for backends added later; one
failing backend never stops the others.

Processors may change the event at any depth: a routing backend with
processors hands them a private deep copy of the event, so no change they
make is ever seen by the caller or by a sibling branch of the tree (the
guarantee Open edX gives with `copy.deepcopy`; `isolated_copy` gives it at a
fraction of the cost for JSON-like events). So does a routing backend with
a backend that does not declare ``leaves_events_unchanged`` (it may change
events); one with a backend that declares ``keeps_events`` (it holds events
after `send`, while the caller may change its data) copies the data. A
tracker makes these copies as it builds the event, and hands it over
without another (`_send_owned`).

Encode once: when two or more backends declare ``leaves_events_unchanged =
True`` (ours that write JSON do), the fan-out runs inside a sharing scope
of `eventtracking.serialization`, so they all write the bytes of one
encoding; after each backend that does not declare it, the remembered
encodings are dropped (it may have changed the event). Such a routing
backend is not `direct`: the tracker calls its `send`.

Log lines are Open edX's, on the logger ``eventtracking.backends.routing``;
failures are also counted (``backend.<name>.errors``, ``processor.errors``)
in the routing backend's own `counters`, which `Tracker.stats()` sums over
its tree, and in the process totals (`eventtracking.diagnostics.snapshot`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .. import diagnostics, serialization
from .._copies import isolated_copy, kept_copy
from ..logsafe import safe_logger
from ..processors.exceptions import (
    EventEmissionExit,
    NoBackendEnabled,
    NoTransformerImplemented,
)
from . import close_backend, flush_backend, keeps_events, leaves_events_unchanged

LOG = safe_logger(__name__)  # outside input in messages cannot forge lines

Processor = Any  # any callable ``event -> event | None``


def _exposes(backend: Any) -> bool:
    """True if `backend` may change events: it needs a deep copy of each (`isolated_copy`).

    A backend that declares `leaves_events_unchanged` does not; nor does a
    routing backend that routes the standard way (it makes the copies its
    own backends need).
    """
    if leaves_events_unchanged(backend):
        return False
    return not _standard_routing(backend)


def _standard_routing(backend: Any) -> bool:
    send = getattr(getattr(backend, "send", None), "__func__", None)
    return isinstance(backend, RoutingBackend) and send is RoutingBackend.send


class _Backends(OrderedDict[str, Any]):
    """A routing backend's backends: an OrderedDict (as Open edX's) that keeps its
    owner's routes in step, in sorted-name order."""

    def __init__(self, items: Mapping[str, Any], owner: RoutingBackend) -> None:
        super().__init__()
        self._owner = owner
        for name, backend in items.items():  # not through __setitem__: the owner reroutes
            OrderedDict.__setitem__(self, name, backend)

    def __setitem__(self, name: str, backend: Any) -> None:
        super().__setitem__(name, backend)
        self._owner._reroute()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._owner._reroute()

    def __ior__(self, other: Any) -> _Backends:  # type: ignore[override,misc]
        self.update(other)
        return self

    # setdefault needs no override: OrderedDict's sets a new key through __setitem__.

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, backend in dict(*args, **kwargs).items():
            OrderedDict.__setitem__(self, name, backend)
        self._owner._reroute()

    def pop(self, name: str, *default: Any) -> Any:
        value = super().pop(name, *default)
        self._owner._reroute()
        return value

    def popitem(self, last: bool = True) -> tuple[str, Any]:
        item = super().popitem(last)
        self._owner._reroute()
        return item

    def clear(self) -> None:
        super().clear()
        self._owner._reroute()

    def __reduce__(self) -> Any:
        # A copy is a plain OrderedDict: it belongs to no routing backend.
        return (OrderedDict, (list(self.items()),))

    def move_to_end(self, name: str, last: bool = True) -> None:
        """Accepted, and undone: backends are always called in sorted-name order."""
        super().move_to_end(name, last)
        self._owner._reroute()


_ROUTING_METHODS: Final = ("send", "send_to_backends", "process_event")

# What a routing backend's `send` copies of each event for its backends:
# nothing (every one declares it leaves events unchanged and keeps none),
# the data (one keeps events), or all of it (one may change events).
COPY_NONE: Final = 0
COPY_DATA: Final = 1
COPY_ALL: Final = 2


# A sharing fan-out's routes: (name, backend, True if the backend may change
# events, its instance dict if it takes the encoded line through
# ``send_line(event, line)``, else None).
SharedRoute = tuple[str, Any, bool, dict[str, Any] | None]
SharedRoutes = tuple[SharedRoute, ...]


def _shared_route(name: str, backend: Any) -> SharedRoute:
    unchanged = leaves_events_unchanged(backend)
    # send_line is used unless `send` is replaced on the instance, which needs
    # a __dict__. The dict is read here once: reading `backend.__dict__` for
    # each event cost some 460 instructions, a lookup in the dict about 50.
    # Only a backend that takes lines is asked for it: reading `__dict__`
    # gives the instance a dict of its own, which slows every attribute read
    # of its `send` (a delivery backend's: some 850 instructions per event).
    instance = None
    if unchanged and hasattr(type(backend), "send_line"):
        instance = getattr(backend, "__dict__", None)
    return name, backend, not unchanged, instance


class RoutingBackend:
    """Run processors, then fan out to backends; nest routing backends to form trees.

    `backends` maps names to objects with a callable `send`; `processors` is a
    list of callables. ValueError (Open edX's messages) names any that do not
    fit. Both may be changed in place or replaced at any time; the order of
    the backends is kept sorted by name whatever the change.
    """

    direct: bool  # see _update_direct
    standard: bool  # see _update_direct

    def __init__(
        self,
        backends: Mapping[str, Any] | None = None,
        processors: Iterable[Processor] | None = None,
    ) -> None:
        self._update_direct()
        self._lock = threading.Lock()
        self.counters = diagnostics.Counters()  # this tree's failures (Tracker.stats)
        self._routes: tuple[tuple[str, Any], ...] = ()
        self._shared: SharedRoutes | None = None  # see _reroute
        self.shares_context = False  # see _reroute
        self._copies = COPY_NONE  # what send must copy for the backends (see _reroute)
        self._backends = _Backends({}, self)
        self._processors: list[Processor] = []
        if backends is not None:
            for name in sorted(backends.keys()):
                self.register_backend(name, backends[name])
        if processors is not None:
            for processor in processors:
                self.register_processor(processor)

    def _update_direct(self) -> None:
        # `standard` is True while `send`, `send_to_backends` and
        # `process_event` are RoutingBackend's own (a subclass that routes its
        # own way, or one of them patched on the instance, makes it False).
        # `direct` also needs one backend at a time (no shared encoding): a
        # Tracker then walks `_routes` itself when there are no processors,
        # having made the copies `_copies` asks for. Read through getattr,
        # never `self.__dict__`: a materialised instance dict would slow every
        # attribute read on the emit path (~8% of it).
        standard = all(
            getattr(getattr(self, method), "__func__", None) is getattr(RoutingBackend, method)
            for method in _ROUTING_METHODS
        )
        object.__setattr__(self, "standard", standard)
        object.__setattr__(self, "direct", standard and getattr(self, "_shared", None) is None)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _ROUTING_METHODS:
            self._update_direct()

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        if name in _ROUTING_METHODS:
            self._update_direct()

    @property
    def backends(self) -> dict[str, Any]:
        """The backends by name, in the order they are called (a live dict)."""
        return self._backends

    @backends.setter
    def backends(self, backends: Mapping[str, Any]) -> None:
        self._backends = _Backends(backends, self)
        self._reroute()

    @property
    def processors(self) -> list[Processor]:
        """The processors, in the order they run (a live list)."""
        return self._processors

    @processors.setter
    def processors(self, processors: Iterable[Processor]) -> None:
        self._processors = processors if isinstance(processors, list) else list(processors)

    def _reroute(self) -> None:
        # The order of calls, sorted by name, as one immutable snapshot that
        # send_to_backends reads without a lock; rebuilt here on every change.
        with self._lock:
            backends = self._backends
            ordered = sorted(backends.items(), key=lambda item: item[0])
            if list(backends) != [name for name, _ in ordered]:
                OrderedDict.clear(backends)  # not the overrides: they would reroute
                for name, backend in ordered:
                    OrderedDict.__setitem__(backends, name, backend)
            self._routes = tuple(ordered)
            # Two or more backends that leave events unchanged share one encoding.
            shared = tuple(_shared_route(name, backend) for name, backend in ordered)
            sharing = sum(not route[2] for route in shared) >= 2
            self._shared = shared if sharing else None
            # A backend that may change events gets a private deep copy of
            # each, one that keeps them (declaring `keeps_events`) at least a
            # private data dict: neither the caller nor a sibling branch sees
            # what they do, nor they what the caller changes after emit.
            if any(_exposes(backend) for _, backend in ordered):
                self._copies = COPY_ALL
            elif any(keeps_events(backend) for _, backend in ordered):
                self._copies = COPY_DATA
            else:
                self._copies = COPY_NONE
            # Unless a backend may change events, none changes the context (a
            # routing backend below copies for its own): a tracker may then
            # hand them all one merged-context dict instead of a copy per event.
            self.shares_context = bool(ordered) and self._copies != COPY_ALL
        self._update_direct()

    def register_backend(self, name: str, backend: Any) -> None:
        """Add a backend; backends are called in sorted-name order."""
        if not callable(getattr(backend, "send", None)):
            raise ValueError(
                f'Backend {backend.__class__.__name__} does not have a callable "send" method.'
                f" (backend {name!r})"
            )
        self._backends[name] = backend

    def register_processor(self, processor: Processor) -> None:
        """Append a processor to the chain."""
        if not callable(processor):
            raise ValueError(
                f"Processor {processor.__class__.__name__} is not callable. ({processor!r})"
            )
        self._processors.append(processor)

    def send(self, event: Any) -> None:
        """Process `event` and send the result to every backend; never raises.

        The processors, and backends that may change events, work on a
        private deep copy (`isolated_copy`); backends that keep events get at
        least a private ``data`` (`kept_copy`).
        """
        if self._processors:
            try:
                event = self.process_event(event)
            except EventEmissionExit:
                return
        elif self._copies == COPY_ALL:
            event = isolated_copy(event)
        elif self._copies == COPY_DATA:
            event = kept_copy(event)
        self.send_to_backends(event)

    def _send_owned(self, event: Any) -> None:
        # `send` for an event nobody else holds (a tracker built it with
        # private data and contexts): the processors work on it in place.
        if self._processors:
            try:
                event = self._process(event)
            except EventEmissionExit:
                return
        self.send_to_backends(event)

    def process_event(self, event: Any) -> Any:
        """Run the processor chain on a private deep copy; EventEmissionExit propagates.

        Returns `event` itself when there are no processors.
        """
        if not self._processors:
            return event
        return self._process(isolated_copy(event))

    def _process(self, event: Any) -> Any:
        for processor in self._processors:
            try:
                result = processor(event)
            except EventEmissionExit:
                raise
            except Exception:
                self.counters.increment("processor.errors")
                LOG.exception("Failed to execute processor: %s", str(processor))
                continue
            if result is not None:
                event = result
        return event

    def send_to_backends(self, event: Any) -> None:
        """Send `event` to each backend in order; a failing backend is logged and counted."""
        shared = self._shared
        if shared is not None:
            self._send_shared(shared, event)
            return
        for name, backend in self._routes:
            try:
                backend.send(event)
            except Exception as exc:
                self.backend_failed(name, event, exc)

    def _send_shared(self, shared: SharedRoutes, event: Any) -> None:
        # One encoding for every backend that leaves events unchanged; a backend
        # that takes the line gets it passed (unless its `send` was replaced on
        # the instance, which must then be called).
        serialization.begin_sharing()
        try:
            line = None
            for name, backend, may_change, instance in shared:
                try:
                    if instance is not None and "send" not in instance:
                        if line is None:
                            line = serialization.dumps_line(event)
                        backend.send_line(event, line)
                    else:
                        backend.send(event)
                except Exception as exc:
                    self.backend_failed(name, event, exc)
                if may_change:
                    serialization.forget()
                    line = None
        finally:
            serialization.end_sharing()

    def backend_failed(self, name: str, event: Any, exc: BaseException) -> None:
        """Count and log a failed send to `name` with Open edX's log lines (call in `except`)."""
        event_name = event.get("name") if isinstance(event, Mapping) else None
        if isinstance(exc, NoTransformerImplemented):
            LOG.info(
                '[send_to_backends] No transformer has been implemented for edx event "%s", [%s]',
                event_name,
                repr(exc),
            )
            return
        if isinstance(exc, NoBackendEnabled):
            LOG.info(
                '[send_to_backends] Failed to send edx event "%s" to "%s" backend. "%s" backend '
                "has not been enabled, [%s]",
                event_name,
                name,
                name,
                repr(exc),
            )
            return
        self.counters.increment(f"backend.{name}.errors")
        LOG.exception('Unable to send edx event "%s" to backend: %s', event_name, name)

    def send_batch(self, events: list[Any]) -> None:
        """Process each event, then hand the survivors to each backend in one call."""
        survivors: list[Any] = []
        for event in events:
            try:
                survivors.append(self.process_event(event))
            except EventEmissionExit:
                continue
        if not survivors:
            return
        shared = self._shared
        if shared is not None:
            serialization.begin_sharing()
        try:
            for name, backend, may_change, _ in shared or self._plain_routes():
                try:
                    send_batch = getattr(backend, "send_batch", None)
                    if send_batch is not None:
                        send_batch(survivors)
                    else:
                        for event in survivors:
                            backend.send(event)
                except Exception:
                    self.counters.increment(f"backend.{name}.errors")
                    LOG.exception(
                        "Unable to send a batch of %d events to backend: %s", len(survivors), name
                    )
                if may_change:
                    serialization.forget()
        finally:
            if shared is not None:
                serialization.end_sharing()

    def _plain_routes(self) -> SharedRoutes:
        return tuple((name, backend, False, None) for name, backend in self._routes)

    def flush(self, timeout: float = 10.0) -> bool:
        """Flush every backend within one shared deadline; True if all finished."""
        deadline = time.monotonic() + timeout
        ok = True
        for name, backend in self._routes:
            try:
                ok = flush_backend(backend, max(0.0, deadline - time.monotonic())) and ok
            except Exception:
                ok = False
                diagnostics.log_burst(f"flush:{name}", "flush of backend %r failed", name)
        return ok

    def close(self) -> None:
        """Close every backend; errors are logged, and the remaining backends still close."""
        for name, backend in self._routes:
            try:
                close_backend(backend)
            except Exception:
                diagnostics.log_burst(f"close:{name}", "close of backend %r failed", name)
