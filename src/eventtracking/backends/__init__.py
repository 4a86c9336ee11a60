"""Backends receive processed events. A backend needs only `send(event)`.

Optional methods: `send_batch(events)`, `flush(timeout) -> bool`, `close()`.
Backends must not change the event they receive; the routing backend hands
processors a private copy, so changes never leak between branches.

Our sinks are plain writers: `send_batch` is one write (a transaction, a
COPY, a pipeline, a POST), `send` a batch of one, and none of them keeps a
thread, retries, sleeps or hooks into fork and exit: that is the delivery
worker's job (`eventtracking.delivery`). A backend that wants it when built
from configuration says how in ``delivery_defaults`` (DeliveryBackend
options, or None for none), read by `eventtracking.config`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """The one method every backend has."""

    def send(self, event: dict[str, Any]) -> None: ...


def flush_backend(backend: object, timeout: float) -> bool:
    """Call `backend.flush(timeout)` if it has one; True when nothing is left pending."""
    flush = getattr(backend, "flush", None)
    if flush is None:
        return True
    return bool(flush(timeout))


def leaves_events_unchanged(backend: object) -> bool:
    """True if `backend` declares that it never changes the events it is given.

    A wrapper answers for what it wraps (`DeliveryBackend` does, with a
    property of that name).
    """
    return getattr(backend, "leaves_events_unchanged", False) is True


def keeps_events(backend: object) -> bool:
    """True if `backend` declares that it keeps events after `send` returns.

    It is then handed events whose ``data`` is a private copy, so that a
    caller changing its dict after emit changes nothing kept (a delivery
    backend queues or journals events for later).
    """
    return getattr(backend, "keeps_events", False) is True


def close_backend(backend: object) -> None:
    """Call `backend.close()` if it has one."""
    close = getattr(backend, "close", None)
    if close is not None:
        close()


def check_batch_size(batch_size: object) -> int:
    """`batch_size` if it is a positive int (the most events a plain writer writes at once)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    return batch_size
