"""When to try again: the retry policy (backoff with full jitter) and the circuit breaker.

Both are pure state machines over an injected clock, so tests drive them
without sleeping. `classify` turns whatever a backend raised into the
decision the worker needs: retryable or terminal, and how long the backend
asked us to wait (``retry_after``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from ..exceptions import DeliveryError

Clock = Callable[[], float]
CircuitState = Literal["closed", "open", "half_open"]
_REASON_LIMIT: Final = 500


def _number(owner: str, name: str, value: object, *, minimum: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{owner}.{name} must be a number of seconds, not {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{owner}.{name} must be {relation} {minimum}, not {value!r}")
    return float(value)


def _count(owner: str, name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an int >= {minimum}, not {value!r}")
    return value


def from_mapping(cls: Any, value: Any, owner: str) -> Any:
    """Build dataclass `cls` from an instance, a mapping of its fields, or None (defaults).

    ValueError names unknown keys and lists the valid ones, so a typo in a
    configuration file is reported rather than ignored.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{owner} must be a table of options, not {type(value).__name__}")
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(value) - set(valid))
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {unknown}; valid options: {valid}")
    return cls(**value)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a batch that failed with a retryable error.

    The n-th retry waits a random time between 0 and
    ``min(max_backoff, initial_backoff * multiplier ** (n - 1))`` ("full
    jitter"), or longer when the backend asked for ``retry_after`` seconds.
    A batch gives up (goes to dead letters) after `max_attempts` failed
    attempts or `max_elapsed` seconds since its first failure, whichever comes
    first; None means no such limit.
    """

    max_attempts: int | None = 10
    max_elapsed: float | None = None
    initial_backoff: float = 0.1
    max_backoff: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        owner = "retry"
        if self.max_attempts is not None:
            _count(owner, "max_attempts", self.max_attempts, minimum=1)
        if self.max_elapsed is not None:
            _number(owner, "max_elapsed", self.max_elapsed, minimum=0, strict=True)
        _number(owner, "initial_backoff", self.initial_backoff, minimum=0, strict=False)
        _number(owner, "max_backoff", self.max_backoff, minimum=0, strict=False)
        _number(owner, "multiplier", self.multiplier, minimum=1, strict=False)
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"retry.max_backoff ({self.max_backoff}) must be >= "
                f"retry.initial_backoff ({self.initial_backoff})"
            )

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number `attempt` (1-based), before jitter."""
        exponent = max(0, attempt - 1)
        if exponent > 64:  # the cap is reached long before; avoid float overflow
            return self.max_backoff
        return min(self.max_backoff, self.initial_backoff * self.multiplier**exponent)

    def delay(
        self, attempt: int, retry_after: float | None = None, rand: Clock = random.random
    ) -> float:
        """Seconds to wait after failed attempt `attempt`; never less than `retry_after`."""
        wait = rand() * self.ceiling(attempt)
        if retry_after is not None and retry_after > wait:
            return float(retry_after)
        return wait

    def exhausted(self, attempts: int, elapsed: float) -> bool:
        """True when a batch with `attempts` failures over `elapsed` seconds must give up."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.max_elapsed is not None and elapsed >= self.max_elapsed


@dataclass(frozen=True)
class CircuitPolicy:
    """When the breaker opens (`failure_threshold` failures in a row) and when it probes.

    While open, nothing is sent; `reset_timeout` seconds later one event is
    sent as a probe (half-open): success closes the breaker, failure opens it
    again for another `reset_timeout`.
    """

    failure_threshold: int = 5
    reset_timeout: float = 30.0

    def __post_init__(self) -> None:
        _count("circuit", "failure_threshold", self.failure_threshold, minimum=1)
        _number("circuit", "reset_timeout", self.reset_timeout, minimum=0, strict=False)


class CircuitBreaker:
    """Stop hammering a backend that keeps failing; probe it now and then.

    Not thread-safe: each breaker belongs to one delivery worker (or to the
    caller's lock in synchronous mode).
    """

    def __init__(self, policy: CircuitPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self.times_opened = 0

    @property
    def state(self) -> CircuitState:
        """``closed`` (sending), ``open`` (waiting) or ``half_open`` (a probe may go)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() >= self._opened_at + self.policy.reset_timeout:
            return "half_open"
        return "open"

    @property
    def retry_at(self) -> float:
        """The clock time at which a probe may be sent (now, when closed or half-open)."""
        if self._opened_at is None:
            return self._clock()
        return self._opened_at + self.policy.reset_timeout

    def record_success(self) -> None:
        """The backend accepted a send (or answered with a terminal error): close."""
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> bool:
        """Count a failed send; True when this failure opened (or re-opened) the breaker."""
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.policy.failure_threshold:
            if self._opened_at is None:
                self.times_opened += 1
            self._opened_at = self._clock()
            return True
        return False

    def reset(self) -> None:
        """Forget all failures (a forked child starts with a closed breaker)."""
        self._failures = 0
        self._opened_at = None


@dataclass(frozen=True)
class Failure:
    """What a failed send means for the worker."""

    retryable: bool
    retry_after: float | None
    reason: str


def classify(exc: BaseException) -> Failure:
    """Retryable unless the backend raised `TerminalError`; keep its ``retry_after``.

    The reason is the exception's type and message, cut to a few hundred
    characters; it is stored with dead letters, never logged with a payload.
    """
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _REASON_LIMIT:
        text = text[: _REASON_LIMIT - 3] + "..."
    if isinstance(exc, DeliveryError):
        after = exc.retry_after
        if after is not None and (not isinstance(after, int | float) or after < 0):
            after = None
        return Failure(exc.retryable, None if after is None else float(after), text)
    return Failure(True, None, text)
