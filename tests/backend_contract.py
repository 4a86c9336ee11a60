"""The backend contract, as checks any backend can be put through.

A backend has `send(event)`, and here also `send_batch(events)`,
`flush(timeout) -> bool` and an idempotent `close()`, after which sending
raises RuntimeError. It never changes the events it is given. A store also
de-duplicates on the event id, and gives an event without an id (the Open
edX envelope) the same content-derived id every time, so a redelivered copy
is stored once.

Use: build a `Subject` (a fresh backend, a function that reads back what
its sink holds, and whether it is a store), then run each of `CHECKS` on it,
and `STORE_CHECKS` too for a store; `test_backend_contract.py` does this for
every backend.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass
class Subject:
    """A backend under test and how to see what reached its sink."""

    backend: Any
    read: Callable[[], list[dict[str, Any]]]
    is_store: bool = False


def event(i: int, name: str = "contract.test", with_id: bool = True) -> dict[str, Any]:
    """A full-envelope event (``id``, name, timestamp, data, context), or an Open edX one."""
    out: dict[str, Any] = {
        "name": name,
        "timestamp": T0 + timedelta(seconds=i),
        "data": {"i": i, "nested": {"text": f"value {i}", "list": [1, 2.5, None, True]}},
        "context": {"user_id": 10938, "path": f"/some/path/{i}"},
    }
    return {"id": f"contract-{i:05d}", **out} if with_id else out


def seen(subject: Subject) -> list[tuple[Any, ...]]:
    """(name, data.i) of what reached the sink, in order."""
    return [(e["name"], e["data"]["i"]) for e in subject.read() if "data" in e]


def check_send_then_flush(subject: Subject) -> None:
    events = [event(i) for i in range(3)]
    before = copy.deepcopy(events)
    for item in events:
        subject.backend.send(item)
    assert subject.backend.flush(10.0) is True
    assert seen(subject) == [("contract.test", i) for i in range(3)]
    assert events == before, "the backend changed the events it was given"


def check_send_batch(subject: Subject) -> None:
    events = [event(i) for i in range(5)]
    before = copy.deepcopy(events)
    subject.backend.send_batch(events)
    assert subject.backend.flush(10.0) is True
    assert seen(subject) == [("contract.test", i) for i in range(5)]
    assert events == before, "the backend changed the events it was given"


def check_flush_returns_a_bool(subject: Subject) -> None:
    assert subject.backend.flush(5.0) is True  # nothing pending
    subject.backend.send(event(1))
    result = subject.backend.flush(0.0)
    assert isinstance(result, bool)
    assert subject.backend.flush(10.0) is True
    assert seen(subject) == [("contract.test", 1)]


def check_close_writes_and_is_idempotent(subject: Subject) -> None:
    subject.backend.send(event(1))
    subject.backend.close()
    subject.backend.close()
    assert seen(subject) == [("contract.test", 1)]


def check_sending_after_close_raises(subject: Subject) -> None:
    subject.backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        subject.backend.send(event(1))
    with pytest.raises(RuntimeError, match="closed"):
        subject.backend.send_batch([event(2)])


def check_store_is_idempotent_on_id(subject: Subject) -> None:
    if not subject.is_store:
        pytest.skip("not a store: a redelivered event is kept (at-least-once)")
    subject.backend.send_batch([event(1), event(2)])
    subject.backend.send_batch([event(1), event(2), event(3)])
    subject.backend.send(event(3))
    subject.backend.send_batch([event(4), event(4)])  # a duplicate inside one batch
    assert subject.backend.flush(10.0) is True
    stored = subject.read()
    assert sorted(e["id"] for e in stored) == [f"contract-{i:05d}" for i in (1, 2, 3, 4)]


def check_store_gives_content_ids_to_events_without_one(subject: Subject) -> None:
    if not subject.is_store:
        pytest.skip("not a store")
    subject.backend.send(event(1, with_id=False))
    subject.backend.send_batch([event(1, with_id=False), event(2, with_id=False)])
    assert subject.backend.flush(10.0) is True
    stored = subject.read()
    assert sorted(e["data"]["i"] for e in stored) == [1, 2]


CHECKS: tuple[Callable[[Subject], None], ...] = (
    check_send_then_flush,
    check_send_batch,
    check_flush_returns_a_bool,
    check_close_writes_and_is_idempotent,
    check_sending_after_close_raises,
)
STORE_CHECKS: tuple[Callable[[Subject], None], ...] = (
    check_store_is_idempotent_on_id,
    check_store_gives_content_ids_to_events_without_one,
)
