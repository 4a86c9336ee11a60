"""Reliable delivery: one mechanism that wraps any backend (see `DeliveryBackend`).

Batching, the worker thread, retries with backoff, the circuit breaker, the
crash-safe journal, dead letters and fork safety all live here, never inside
a backend. Configure it in code::

    from eventtracking.delivery import DeliveryBackend
    store = DeliveryBackend(SQLiteBackend("events.db"), mode="durable", journal_dir="journal")

or as a component: ``{"ENGINE": "eventtracking.delivery.DeliveryBackend",
"OPTIONS": {"backend": {"ENGINE": ..., "OPTIONS": ...}, "mode": "durable",
"journal_dir": "journal"}}``.
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
