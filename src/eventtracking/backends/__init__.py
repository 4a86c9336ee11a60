"""Backends receive processed events. A backend needs only `send(event)`.

Optional methods: `send_batch(events)`, `flush(timeout) -> bool`, `close()`.
Backends must not change the event they receive; the routing backend hands
processors a private copy, so changes never leak between branches.
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


def close_backend(backend: object) -> None:
    """Call `backend.close()` if it has one."""
    close = getattr(backend, "close", None)
    if close is not None:
        close()
