"""The backend contract, as checks any backend can be put through.

The protocol (`eventtracking.backends`): a backend has `send(event)`; it may
add `send_batch(events)`, `flush(timeout) -> bool` and `close()`. `close()`
is idempotent, and sending afterwards raises a RuntimeError that says the
backend is closed. A backend never changes the events it is given, and
never adds an ``id`` to the caller's event. A store also de-duplicates on
the event id, and gives an event without an id (the Open edX envelope) the
same content-derived id every time, so a redelivered copy is stored once.

Where a backend legitimately differs (Open edX's `LoggerBackend` has only
`send`), its `Capabilities` say so, with the reason in `why`; the checks
then assert the difference itself instead of skipping. `check_capabilities`
keeps the declaration honest: it fails when a backend gains or loses a
method without its declaration following.

Use: build a `Subject` (a fresh backend, a function that reads back what
its sink holds, and its capabilities), then run each of `CHECKS` on it, and
`STORE_CHECKS` too for a store; `test_backend_contract.py` does this for
every backend.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventtracking.backends import close_backend, flush_backend

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Capabilities:
    """What of the protocol a backend offers; anything short of all of it needs a `why`.

    `close_delivers`: `close()` writes what the backend still holds (when
    False, the check flushes before closing). `refuses_after_close`: `send`
    after `close()` raises RuntimeError. `store`: readable and
    de-duplicating on the id (runs `STORE_CHECKS`).
    """

    send_batch: bool = True
    flush: bool = True
    close: bool = True
    close_delivers: bool = True
    refuses_after_close: bool = True
    store: bool = False
    why: str = ""

    def full(self) -> bool:
        """True when the backend offers the whole protocol."""
        return all(
            (
                self.send_batch,
                self.flush,
                self.close,
                self.close_delivers,
                self.refuses_after_close,
            )
        )


FULL = Capabilities()
STORE = Capabilities(store=True)


@dataclass
class Subject:
    """A backend under test, how to see what reached its sink, and what it offers."""

    backend: Any
    read: Callable[[], list[dict[str, Any]]]
    caps: Capabilities = FULL


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


def flush(subject: Subject, timeout: float) -> bool:
    """`backend.flush(timeout)`, or what the routing backend does for one without flush."""
    if subject.caps.flush:
        result = subject.backend.flush(timeout)
        assert isinstance(result, bool), f"flush returned {result!r}, not a bool"
        return result
    return flush_backend(subject.backend, timeout)


def send_batch(subject: Subject, events: list[dict[str, Any]]) -> None:
    """`backend.send_batch(events)`, or what the routing backend does for one without it."""
    if subject.caps.send_batch:
        subject.backend.send_batch(events)
    else:
        for item in events:
            subject.backend.send(item)


def check_capabilities(subject: Subject) -> None:
    backend, caps = subject.backend, subject.caps
    assert callable(getattr(backend, "send", None))
    for method in ("send_batch", "flush", "close"):
        offered, declared = callable(getattr(backend, method, None)), getattr(caps, method)
        assert offered == declared, f"{type(backend).__name__}.{method}: {offered=}, {declared=}"
    if not caps.close:
        assert not caps.refuses_after_close, "refusing after close needs a close"
    assert caps.full() or caps.why, "a backend short of the full protocol must say why"


def check_send_then_flush(subject: Subject) -> None:
    events = [event(i) for i in range(3)]
    before = copy.deepcopy(events)
    for item in events:
        subject.backend.send(item)
    assert flush(subject, 10.0) is True
    assert seen(subject) == [("contract.test", i) for i in range(3)]
    assert events == before, "the backend changed the events it was given"


def check_send_batch(subject: Subject) -> None:
    events = [event(i) for i in range(5)]
    before = copy.deepcopy(events)
    send_batch(subject, events)
    assert flush(subject, 10.0) is True
    assert seen(subject) == [("contract.test", i) for i in range(5)]
    assert events == before, "the backend changed the events it was given"


def check_events_without_an_id_stay_unchanged(subject: Subject) -> None:
    # The Open edX envelope has no id; a backend that needs one makes its own copy.
    events = [event(i, with_id=False) for i in range(3)]
    before = copy.deepcopy(events)
    subject.backend.send(events[0])
    send_batch(subject, events[1:])
    assert flush(subject, 10.0) is True
    assert sorted(seen(subject)) == [("contract.test", i) for i in range(3)]
    assert events == before, "the backend changed (or gave an id to) the caller's events"


def check_flush_returns_a_bool(subject: Subject) -> None:
    assert flush(subject, 5.0) is True  # nothing pending
    subject.backend.send(event(1))
    assert isinstance(flush(subject, 0.0), bool)
    assert flush(subject, 10.0) is True
    assert seen(subject) == [("contract.test", 1)]


def check_close_is_idempotent(subject: Subject) -> None:
    subject.backend.send(event(1))
    if not subject.caps.close:
        close_backend(subject.backend)  # what a tracker's close does: nothing to call
        subject.backend.send(event(2))  # and the backend keeps working
        assert seen(subject) == [("contract.test", 1), ("contract.test", 2)]
        return
    if not subject.caps.close_delivers:
        assert flush(subject, 10.0) is True
    subject.backend.close()
    subject.backend.close()
    assert seen(subject) == [("contract.test", 1)]


def check_use_after_close(subject: Subject) -> None:
    caps = subject.caps
    if not caps.close:
        assert not hasattr(subject.backend, "close")
        return
    subject.backend.close()
    if not caps.refuses_after_close:
        # The declared difference: sending after close does not raise here.
        subject.backend.send(event(1))
        send_batch(subject, [event(2)])
        return
    with pytest.raises(RuntimeError, match="closed"):
        subject.backend.send(event(1))
    if caps.send_batch:
        with pytest.raises(RuntimeError, match="closed"):
            subject.backend.send_batch([event(2)])


def check_store_is_idempotent_on_id(subject: Subject) -> None:
    subject.backend.send_batch([event(1), event(2)])
    subject.backend.send_batch([event(1), event(2), event(3)])
    subject.backend.send(event(3))
    subject.backend.send_batch([event(4), event(4)])  # a duplicate inside one batch
    assert subject.backend.flush(10.0) is True
    stored = subject.read()
    assert sorted(e["id"] for e in stored) == [f"contract-{i:05d}" for i in (1, 2, 3, 4)]


def check_store_gives_content_ids_to_events_without_one(subject: Subject) -> None:
    subject.backend.send(event(1, with_id=False))
    subject.backend.send_batch([event(1, with_id=False), event(2, with_id=False)])
    assert subject.backend.flush(10.0) is True
    stored = subject.read()
    assert sorted(e["data"]["i"] for e in stored) == [1, 2]


CHECKS: tuple[Callable[[Subject], None], ...] = (
    check_capabilities,
    check_send_then_flush,
    check_send_batch,
    check_events_without_an_id_stay_unchanged,
    check_flush_returns_a_bool,
    check_close_is_idempotent,
    check_use_after_close,
)
STORE_CHECKS: tuple[Callable[[Subject], None], ...] = (
    check_store_is_idempotent_on_id,
    check_store_gives_content_ids_to_events_without_one,
)
