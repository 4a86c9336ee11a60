"""The public test helpers of `eventtracking.testing`, on their own and with the delivery worker."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from eventtracking.delivery import DeliveryBackend
from eventtracking.exceptions import RetryableError, TerminalError
from eventtracking.testing import (
    BlockingBackend,
    DownBackend,
    FakeClock,
    FlakyBackend,
    RecordingBackend,
    RejectingBackend,
)


def event(n: int) -> dict[str, Any]:
    return {"id": f"ev-{n}", "name": "a.b", "timestamp": None, "data": {"n": n}, "context": {}}


def test_recording_backend_keeps_each_call_as_a_batch() -> None:
    backend = RecordingBackend()
    backend.send(event(1))
    backend.send_batch([event(2), event(3)])
    assert backend.batches == [[event(1)], [event(2), event(3)]]
    assert backend.ids() == ["ev-1", "ev-2", "ev-3"] and backend.names() == ["a.b"] * 3
    assert backend.flush(1.0) is True and backend.flushes == 1
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.send(event(4))


def test_down_backend_refuses_until_it_recovers() -> None:
    backend = DownBackend(retry_after=3.0)
    with pytest.raises(RetryableError, match="connection refused") as raised:
        backend.send(event(1))
    assert raised.value.retry_after == 3.0
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    with pytest.raises(RetryableError):
        backend.send_batch([event(2)])
    assert backend.attempts == 2 and backend.events == []
    backend.recover()
    backend.send(event(3))
    assert backend.ids() == ["ev-3"] and backend.attempts == 3


def test_flaky_backend_fails_n_times_then_succeeds() -> None:
    backend = FlakyBackend(failures=2)
    for _ in range(2):
        with pytest.raises(RetryableError):
            backend.send(event(1))
    backend.send(event(1))
    assert backend.attempts == 3 and backend.ids() == ["ev-1"]


def test_flaky_backend_raises_the_given_error_or_builds_it() -> None:
    with pytest.raises(TerminalError, match="no"):
        FlakyBackend(1, TerminalError("no")).send(event(1))
    with pytest.raises(ConnectionError, match="reset"):
        FlakyBackend(1, lambda: ConnectionResetError("reset")).send(event(1))
    with pytest.raises(ValueError, match="failures"):
        FlakyBackend(-1)


def test_rejecting_backend_refuses_batches_with_a_bad_event() -> None:
    backend = RejectingBackend(lambda e: e["data"]["n"] == 2, message="HTTP 400: bad event")
    backend.send_batch([event(0), event(1)])
    with pytest.raises(TerminalError, match="HTTP 400"):
        backend.send_batch([event(2), event(3)])
    assert backend.ids() == ["ev-0", "ev-1"] and backend.rejected == [event(2)]
    assert backend.calls == 2
    with pytest.raises(TerminalError):
        RejectingBackend().send(event(1))  # without `bad`: everything


def test_blocking_backend_holds_calls_until_released() -> None:
    backend = BlockingBackend()
    assert backend.wait_until_blocked(timeout=0.0) is False
    sender = threading.Thread(target=backend.send, args=(event(1),))
    sender.start()
    assert backend.wait_until_blocked()
    assert backend.waiting == 1 and backend.events == []
    backend.release()
    sender.join(10)
    assert backend.waiting == 0 and backend.ids() == ["ev-1"]
    backend.send(event(2))  # released: later calls pass straight through
    backend.block()
    assert backend.wait_until_blocked(timeout=0.0) is False


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0)
    assert clock() == clock.now == clock.monotonic() == 10.0
    clock.advance(2.5)
    clock.sleep(1.5)
    assert clock() == 14.0 and clock.sleeps == [1.5]
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.sleep(-1)


def test_fakes_drive_the_delivery_worker_without_real_waiting() -> None:
    clock, backend = FakeClock(), FlakyBackend(failures=2)
    delivery = DeliveryBackend(
        backend,
        mode="sync",
        retry={"initial_backoff": 1.0},
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 1.0,
    )
    delivery.send(event(1))
    assert backend.attempts == 3 and clock.sleeps == [1.0, 2.0]
    assert backend.ids() == ["ev-1"]
    delivery.close()
    assert backend.closed


def test_a_blocked_backend_shows_that_emit_does_not_wait() -> None:
    backend = BlockingBackend()
    delivery = DeliveryBackend(backend, batch_size=1)
    try:
        delivery.send(event(0))
        assert backend.wait_until_blocked()
        for n in range(1, 50):  # the worker is stuck inside the backend meanwhile
            delivery.send(event(n))
        assert delivery.flush(0.0) is False
        backend.release()
        assert delivery.flush(10.0) is True
        assert sorted(backend.ids()) == sorted(f"ev-{n}" for n in range(50))
    finally:
        backend.release()
        delivery.close()
