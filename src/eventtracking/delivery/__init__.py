"""Reliable delivery: one mechanism that wraps any backend (see `DeliveryBackend`).

Batching, the worker thread, retries with backoff, the circuit breaker, the
crash-safe journal, dead letters and fork safety all live here, never inside
a backend. Built from configuration, the backends that declare
``delivery_defaults`` (ours) are wrapped by default, and a ``DELIVERY`` key
next to ``ENGINE`` chooses (see `configure`). In code::

    from eventtracking.delivery import DeliveryBackend
    store = DeliveryBackend(SQLiteBackend("events.db"), mode="durable", journal_dir="journal")

or as a component: ``{"ENGINE": "eventtracking.delivery.DeliveryBackend",
"OPTIONS": {"backend": {"ENGINE": ..., "OPTIONS": ...}, "mode": "durable",
"journal_dir": "journal"}}``.

The way through: `worker` (`DeliveryBackend`: send, flush, close, fork) ->
`intake` (overflow, disk budget, drops) or `inline` (writes in the caller) ->
`loop` (the worker thread) -> `dispatch` (one attempt, what a failure means)
-> `retry` (backoff, the circuit breaker); the journal is `journal`,
`writer`, `segments` and `lanes`, its default place `paths`.
"""

from __future__ import annotations

from .deadletter import DeadLetter, DeadLetterStore
from .journal import JournalFull
from .retry import CircuitBreaker, CircuitPolicy, RetryPolicy
from .worker import DeliveryBackend

__all__ = [
    "CircuitBreaker",
    "CircuitPolicy",
    "DeadLetter",
    "DeadLetterStore",
    "DeliveryBackend",
    "JournalFull",
    "RetryPolicy",
]
