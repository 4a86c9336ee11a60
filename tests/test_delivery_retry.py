"""Retry policy, circuit breaker and the dispatcher's rules, on a fake clock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from delivery_support import OneByOneBackend, event
from eventtracking.delivery import CircuitPolicy, DeliveryBackend, RetryPolicy
from eventtracking.delivery.dispatch import Batch, Dispatcher
from eventtracking.delivery.metrics import DeliveryMetrics
from eventtracking.delivery.retry import CircuitBreaker, classify
from eventtracking.exceptions import RetryableError, TerminalError
from eventtracking.testing import DownBackend, FakeClock, FlakyBackend, RejectingBackend

# -- the policy --------------------------------------------------------------------------


def test_backoff_ceiling_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.ceiling(10_000) == 1.0  # no overflow


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=10.0)
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    assert policy.delay(3, rand=lambda: 0.5) == pytest.approx(1.0)
    assert policy.delay(3, rand=lambda: 0.999) == pytest.approx(1.998)


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
    assert policy.delay(1, retry_after=7.0, rand=lambda: 1.0) == 7.0  # longer than the cap
    assert policy.delay(5, retry_after=0.01, rand=lambda: 1.0) == pytest.approx(1.0)


def test_exhaustion_by_attempts_or_elapsed_time() -> None:
    assert RetryPolicy(max_attempts=3).exhausted(3, 0.0)
    assert not RetryPolicy(max_attempts=3).exhausted(2, 1e9)
    assert RetryPolicy(max_attempts=None, max_elapsed=60).exhausted(1, 60.0)
    assert not RetryPolicy(max_attempts=None, max_elapsed=None).exhausted(10**6, 1e9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "retry.max_attempts must be an int >= 1"),
        ({"initial_backoff": -1}, "retry.initial_backoff must be >= 0"),
        ({"initial_backoff": 2, "max_backoff": 1}, "retry.max_backoff (1) must be >="),
        ({"multiplier": 0.5}, "retry.multiplier must be >= 1"),
        ({"max_elapsed": "1h"}, "retry.max_elapsed must be a number of seconds"),
    ],
)
def test_bad_retry_options_say_what_to_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RetryPolicy(**options)


def test_classify_keeps_retry_after_and_terminality() -> None:
    assert classify(RetryableError("x", retry_after=3)).retry_after == 3.0
    assert classify(TerminalError("bad")).retryable is False
    other = classify(KeyError("boom"))
    assert other.retryable and other.retry_after is None and "KeyError" in other.reason
    assert len(classify(ValueError("x" * 5000)).reason) <= 500


# -- the circuit breaker -------------------------------------------------------------------


def test_breaker_opens_after_threshold_and_half_opens_after_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=3, reset_timeout=10), clock)
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.state == "open" and breaker.retry_at == clock.now + 10
    clock.sleep(9.9)
    assert breaker.state == "open"
    clock.sleep(0.1)
    assert breaker.state == "half_open"
    assert breaker.record_failure()  # a failed probe re-opens at once
    assert breaker.state == "open" and breaker.times_opened == 1
    clock.sleep(10)
    breaker.record_success()
    assert breaker.state == "closed"


# -- the dispatcher ------------------------------------------------------------------------

HTTP_400 = "HTTP 400: the batch holds an event we cannot accept"


class Harness:
    """A dispatcher on a fake clock, run to completion like synchronous mode does."""

    def __init__(self, backend: Any, **retry: Any) -> None:
        self.clock = FakeClock()
        self.dead: list[tuple[list[str], str, int]] = []
        self.breaker = CircuitBreaker(
            CircuitPolicy(failure_threshold=retry.pop("threshold", 100), reset_timeout=30),
            self.clock,
        )
        self.metrics = DeliveryMetrics("test")
        self.dispatcher = Dispatcher(
            backend,
            name="test",
            retry=RetryPolicy(**retry),
            breaker=self.breaker,
            metrics=self.metrics,
            dead_letter=self._dead,
            clock=self.clock,
            rand=lambda: 1.0,  # jitter at its ceiling: a predictable schedule
        )

    def _dead(
        self, events: list[Any], reason: str, attempts: int, first: float, last: float
    ) -> None:
        self.dead.append(([e["id"] for e in events], reason, attempts))

    def run(self, events: list[Any], max_steps: int = 1000) -> Batch:
        batch = Batch(events)
        for _ in range(max_steps):
            if batch.done:
                return batch
            when = self.dispatcher.step(batch)
            if when > self.clock.now:
                self.clock.sleep(when - self.clock.now)
        return batch


def test_fails_n_times_then_succeeds_with_an_exponential_schedule() -> None:
    backend = FlakyBackend(failures=4)
    harness = Harness(backend, initial_backoff=0.5, max_backoff=3.0)
    harness.run([event(1), event(2)])
    assert backend.ids() == ["ev-00000001", "ev-00000002"]
    assert harness.clock.sleeps == pytest.approx([0.5, 1.0, 2.0, 3.0])
    snap = harness.metrics.snapshot()
    assert snap["delivered"] == 2 and snap["failures"] == 4 and snap["retried"] == 8


def test_retry_after_from_the_backend_is_honoured() -> None:
    backend = FlakyBackend(failures=2, error=lambda: RetryableError("429", retry_after=12.0))
    harness = Harness(backend, initial_backoff=0.1)
    harness.run([event(1)])
    assert harness.clock.sleeps == pytest.approx([12.0, 12.0])


def test_exhausted_retries_go_to_dead_letters_with_the_reason() -> None:
    harness = Harness(DownBackend(), max_attempts=3, initial_backoff=1, max_backoff=1)
    harness.run([event(1), event(2)])
    assert harness.dead == [
        (
            ["ev-00000001", "ev-00000002"],
            "retries exhausted after 3 attempts: RetryableError: connection refused",
            3,
        )
    ]
    assert harness.clock.sleeps == pytest.approx([1.0, 1.0])


def test_max_elapsed_bounds_the_retries() -> None:
    harness = Harness(DownBackend(), max_attempts=None, max_elapsed=10, initial_backoff=4)
    harness.run([event(1)])
    assert len(harness.dead) == 1 and sum(harness.clock.sleeps) >= 10


def test_terminal_error_bisects_to_isolate_the_bad_events() -> None:
    bad = {"ev-00000003", "ev-00000011"}
    backend = RejectingBackend(lambda e: e["id"] in bad, message=HTTP_400)
    harness = Harness(backend)
    harness.run([event(n) for n in range(16)])
    assert sorted(backend.ids()) == sorted(f"ev-{n:08d}" for n in range(16) if n not in (3, 11))
    assert sorted(ids[0] for ids, _, _ in harness.dead) == sorted(bad)
    assert all(len(ids) == 1 and "HTTP 400" in reason for ids, reason, _ in harness.dead)
    assert harness.clock.sleeps == []  # terminal errors are never waited on
    assert backend.calls <= 2 * 2 * 4 + 1  # O(bad * log n), not one call per event


def test_terminal_error_from_a_one_by_one_backend_hits_only_that_event() -> None:
    backend = OneByOneBackend(reject=lambda e: e["data"]["n"] == 2)
    harness = Harness(backend)
    harness.run([event(n) for n in range(5)])
    assert [e["data"]["n"] for e in backend.events] == [0, 1, 3, 4]
    assert [ids for ids, _, _ in harness.dead] == [["ev-00000002"]]


def test_open_circuit_waits_and_probes_with_one_event() -> None:
    backend = FlakyBackend(failures=3)
    harness = Harness(backend, threshold=3, initial_backoff=0.1, max_attempts=10)
    harness.run([event(n) for n in range(4)])
    assert harness.clock.sleeps[:2] == pytest.approx([0.1, 0.2])
    assert harness.clock.sleeps[2] == pytest.approx(
        30
    )  # the breaker's reset timeout, not the backoff
    assert backend.batches[0] == [event(0)]  # the probe: one event
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(4)]


def test_failed_probes_do_not_exhaust_a_batch_while_the_backend_is_down() -> None:
    backend = FlakyBackend(failures=50)
    harness = Harness(backend, threshold=2, max_attempts=5, initial_backoff=0.1)
    harness.run([event(1), event(2)], max_steps=10_000)
    assert harness.dead == []
    assert sorted(backend.ids()) == ["ev-00000001", "ev-00000002"]


def test_a_lone_event_counts_its_probes_so_it_cannot_wedge_the_worker() -> None:
    harness = Harness(DownBackend(), threshold=2, max_attempts=4, initial_backoff=0.1)
    batch = harness.run([event(1)])
    assert batch.done and harness.dead[0][0] == ["ev-00000001"]


# -- synchronous mode ---------------------------------------------------------------------


def test_sync_mode_retries_in_the_caller_thread_on_the_injected_clock() -> None:
    clock = FakeClock()
    backend = FlakyBackend(failures=2)
    delivery = DeliveryBackend(
        backend,
        mode="sync",
        retry={"initial_backoff": 1.0, "max_backoff": 5.0},
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 1.0,
    )
    delivery.send(event(1))
    assert backend.ids() == ["ev-00000001"]  # delivered before send returned
    assert clock.sleeps == pytest.approx([1.0, 2.0])
    assert delivery.flush(1.0)
    delivery.close()
    assert backend.closed


def test_sync_mode_fails_fast_to_dead_letters_when_the_circuit_opens(tmp_path: Any) -> None:
    clock = FakeClock()
    backend = DownBackend()
    delivery = DeliveryBackend(
        backend,
        mode="sync",
        dead_letters=tmp_path / "dead.db",
        circuit={"failure_threshold": 3, "reset_timeout": 60},
        clock=clock,
        sleep=clock.sleep,
    )
    delivery.send(event(1))
    attempts = backend.attempts
    delivery.send(event(2))  # circuit open: not even tried
    assert attempts == 3 and backend.attempts == 3
    letters = delivery.dead_letters.select() if delivery.dead_letters else []
    assert [letter.event["id"] for letter in letters] == ["ev-00000001", "ev-00000002"]
    assert all(letter.reason.startswith("circuit open") for letter in letters)
    stats = delivery.delivery_stats()
    assert stats["delivery.DownBackend.dead_lettered"] == 2
    clock.sleep(60)  # half-open: the next event is a probe
    delivery.send(event(3))
    assert backend.attempts == 4
    delivery.close()


def test_sync_send_batch_bisects_like_the_worker(tmp_path: Any) -> None:
    backend = RejectingBackend(lambda e: e["data"]["n"] == 7)
    delivery = DeliveryBackend(backend, mode="sync", dead_letters=tmp_path / "dl.db")
    delivery.send_batch([event(n) for n in range(10)])
    assert len(backend.events) == 9
    assert delivery.metrics.snapshot()["dead_lettered"] == 1
    delivery.close()


def test_sync_mode_without_a_dead_letter_store_counts_the_loss() -> None:
    delivery = DeliveryBackend(OneByOneBackend(lambda e: True), mode="sync")
    delivery.send(event(1))
    assert delivery.metrics.snapshot()["dropped"] == {"terminal": 1}
    delivery.close()
