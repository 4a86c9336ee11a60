"""Route events through a chain of processors to several backends (Open edX semantics).

Processors run in order; each returns the event to pass on (None means
unchanged). `EventEmissionExit` drops the event; any other exception is
logged, counted, and the chain goes on with the event as the failing processor
left it (changes it made in place before raising are kept). Backends are
called in sorted-name order; one failing backend never stops the others.

Processors may change the event's top-level keys and the top-level keys of
``data`` and ``context`` freely: a routing backend with processors gives them a
private shallow copy. Nested values are shared, so a processor that changes
one must copy it first (copy on write). Backends must not change events.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import diagnostics
from ..processors.exceptions import EventEmissionExit
from . import close_backend, flush_backend

LOG = logging.getLogger(__name__)

Processor = Callable[[Any], Any]


def _private_copy(event: Any) -> Any:
    if isinstance(event, dict):
        copy = event.copy()
        for key in ("data", "context"):
            value = copy.get(key)
            if isinstance(value, dict):
                copy[key] = value.copy()
        return copy
    if isinstance(event, list):
        return [_private_copy(e) for e in event]
    return event


class _Backends(dict[str, Any]):
    """A routing backend's backends: a dict that reports every change to its owner."""

    __slots__ = ("_changed",)

    def __init__(self, items: Mapping[str, Any], changed: Callable[[], None]) -> None:
        super().__init__(items)
        self._changed = changed

    def __setitem__(self, name: str, backend: Any) -> None:
        super().__setitem__(name, backend)
        self._changed()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._changed()

    def __ior__(self, other: Any) -> _Backends:  # type: ignore[override,misc]
        self.update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, name: str, default: Any = None) -> Any:
        value = super().setdefault(name, default)
        self._changed()
        return value

    def pop(self, name: str, *default: Any) -> Any:
        value = super().pop(name, *default)
        self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()


class RoutingBackend:
    """Run processors, then fan out to backends; nest routing backends to form trees.

    `backends` maps names to objects with a callable `send`; `processors` is a
    list of callables. ValueError names any that do not fit. Both may be
    changed in place or replaced at any time; a tracker sees the change at
    its next event (see `on_change`).
    """

    def __init__(
        self,
        backends: Mapping[str, Any] | None = None,
        processors: Iterable[Processor] | None = None,
    ) -> None:
        self._listeners: list[weakref.WeakMethod[Callable[[], None]]] = []
        self._listeners_lock = threading.Lock()
        self._backends = _Backends({}, self._changed)
        self._processors: list[Processor] = []
        for name in sorted((backends or {}).keys()):
            self.register_backend(name, backends[name])  # type: ignore[index]
        for processor in processors or ():
            self.register_processor(processor)

    @property
    def backends(self) -> dict[str, Any]:
        """The backends by name, in the order they are called (a live dict)."""
        return self._backends

    @backends.setter
    def backends(self, backends: Mapping[str, Any]) -> None:
        self._backends = _Backends(backends, self._changed)
        self._changed()

    @property
    def processors(self) -> list[Processor]:
        """The processors, in the order they run (a live list)."""
        return self._processors

    @processors.setter
    def processors(self, processors: Iterable[Processor]) -> None:
        self._processors = processors if isinstance(processors, list) else list(processors)
        self._changed()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` (a bound method, held weakly) after backends or processors change.

        Changes in place to the `backends` dict are reported too; the
        `processors` list is reported when replaced (its length is read per event).
        """
        with self._listeners_lock:
            self._listeners.append(weakref.WeakMethod(callback))

    def _changed(self) -> None:
        with self._listeners_lock:
            self._listeners = [ref for ref in self._listeners if ref() is not None]
            callbacks = [ref() for ref in self._listeners]
        for callback in callbacks:
            if callback is not None:
                callback()

    def register_backend(self, name: str, backend: Any) -> None:
        """Add a backend; backends are called in sorted-name order."""
        if not callable(getattr(backend, "send", None)):
            raise ValueError(
                f"backend {name!r} ({type(backend).__name__}) has no callable 'send' method"
            )
        self.backends = dict(sorted({**self._backends, name: backend}.items()))

    def register_processor(self, processor: Processor) -> None:
        """Append a processor to the chain."""
        if not callable(processor):
            raise ValueError(
                f"processor {processor!r} ({type(processor).__name__}) is not callable"
            )
        self.processors.append(processor)

    def send(self, event: Any) -> None:
        """Process `event` and send the result to every backend; never raises."""
        if self.processors:
            try:
                event = self.process_event(event)
            except EventEmissionExit:
                return
        self.send_to_backends(event)

    def process_event(self, event: Any) -> Any:
        """Run the processor chain on a private copy; EventEmissionExit propagates."""
        if not self.processors:
            return event
        event = _private_copy(event)
        for processor in self.processors:
            try:
                result = processor(event)
            except EventEmissionExit:
                raise
            except Exception:
                diagnostics.increment("processor.errors")
                diagnostics.log_burst(
                    f"processor:{id(processor)}", "processor %r failed; event kept", processor
                )
                continue
            if result is not None:
                event = result
        return event

    def send_to_backends(self, event: Any) -> None:
        """Send `event` to each backend in order; a failing backend is logged and counted."""
        for name, backend in self.backends.items():
            try:
                backend.send(event)
            except Exception:
                self.backend_failed(name)

    def backend_failed(self, name: str) -> None:
        """Count and log (rate-limited, with the active exception) a failed send to `name`."""
        diagnostics.increment(f"backend.{name}.errors")
        diagnostics.log_burst(f"backend:{name}", "unable to send event to backend %r", name)

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
        for name, backend in self.backends.items():
            try:
                send_batch = getattr(backend, "send_batch", None)
                if send_batch is not None:
                    send_batch(survivors)
                else:
                    for event in survivors:
                        backend.send(event)
            except Exception:
                diagnostics.increment(f"backend.{name}.errors")
                diagnostics.log_burst(f"backend:{name}", "unable to send batch to backend %r", name)

    def flush(self, timeout: float = 10.0) -> bool:
        """Flush every backend within one shared deadline; True if all finished."""
        deadline = time.monotonic() + timeout
        ok = True
        for name, backend in self.backends.items():
            try:
                ok = flush_backend(backend, max(0.0, deadline - time.monotonic())) and ok
            except Exception:
                ok = False
                diagnostics.log_burst(f"flush:{name}", "flush of backend %r failed", name)
        return ok

    def close(self) -> None:
        """Close every backend; errors are logged, and the remaining backends still close."""
        for name, backend in self.backends.items():
            try:
                close_backend(backend)
            except Exception:
                diagnostics.log_burst(f"close:{name}", "close of backend %r failed", name)
