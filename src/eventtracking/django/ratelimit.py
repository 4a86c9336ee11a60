"""Token buckets for the browser endpoint: a limit per session and per IP address.

`RateLimiter` (the default) keeps its buckets in the process: each worker
process has its own, so with N processes a client can send up to N times the
configured rate. Memory is bounded: beyond `max_keys` keys the least recently
used go. `CacheRateLimiter` keeps them in a Django cache that every worker
shares (``EVENT_TRACKING_BROWSER['RATE_LIMIT_CACHE']``), so N workers share
one budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from .. import diagnostics
from .conf import Rate

__all__ = ["CacheRateLimiter", "Limiter", "RateLimiter"]

LOCK_SECONDS: Final = 2.0  # a lock left by a crashed worker frees itself this soon
LOCK_WAIT: Final = 0.25  # a bucket locked longer is too busy: the request is told to wait


class Limiter(Protocol):
    """What the browser endpoint asks of a rate limiter."""

    def take(self, keys: Sequence[tuple[str, str]], n: int) -> float: ...


def _refill(rate: Rate, tokens: float, then: float, now: float) -> float:
    return min(float(rate.burst), tokens + max(0.0, now - then) * rate.per_second)


def _verdict(rate: Rate, tokens: float, n: int) -> float:
    """Seconds to wait before `n` tokens are there (0.0: now; inf: never, n > burst)."""
    if n > rate.burst:
        return float("inf")
    return 0.0 if tokens >= n else (n - tokens) / rate.per_second


class RateLimiter:
    """Several named token buckets taken from together, all or nothing; thread-safe."""

    def __init__(
        self,
        rates: Sequence[tuple[str, Rate | None]],
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rates = {kind: rate for kind, rate in rates if rate is not None}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, time)
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()

    def take(self, keys: Sequence[tuple[str, str]], n: int) -> float:
        """Take `n` tokens from the bucket of every (kind, key); 0.0 when granted.

        Otherwise nothing is taken and the result is the seconds to wait
        (``inf`` when `n` exceeds a bucket's burst). Kinds without a rate and
        empty keys are not limited.
        """
        now = self._clock()
        wanted = [(k, key) for k, key in keys if key and k in self._rates]
        with self._lock:
            levels = []
            wait = 0.0
            for bucket in wanted:
                rate = self._rates[bucket[0]]
                tokens, then = self._buckets.pop(bucket, (float(rate.burst), now))
                tokens = _refill(rate, tokens, then, now)
                levels.append((bucket, tokens))
                wait = max(wait, _verdict(rate, tokens, n))
            spend = n if wait == 0.0 else 0
            for bucket, tokens in levels:
                self._buckets[bucket] = (tokens - spend, now)  # re-inserted: most recent last
            while len(self._buckets) > self._max_keys:
                del self._buckets[next(iter(self._buckets))]
            return wait


class CacheRateLimiter:
    """The same token buckets kept in a Django cache, so every process shares them.

    `cache` is a Django cache (``django.core.cache.caches[alias]``) that all
    workers reach and whose ``add`` is atomic: the database, Redis and
    Memcached backends (not the per-process local-memory cache, nor the
    file-based one). Each take locks the buckets it touches with
    ``cache.add`` (in sorted order, for at most `LOCK_SECONDS`), reads them,
    and writes them back. Times are wall-clock, as the processes share them.
    A bucket that stays locked for `LOCK_WAIT` is being spent by other
    workers at that moment, so the request is told to wait `LOCK_WAIT`
    seconds. When the cache itself fails the request is let through,
    counted as ``django.rate_limit_unchecked`` and logged once per burst:
    the limit protects, it must never take the endpoint down.
    """

    def __init__(
        self,
        rates: Sequence[tuple[str, Rate | None]],
        cache: Any,
        prefix: str = "eventtracking:rate",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rates = {kind: rate for kind, rate in rates if rate is not None}
        self._cache = cache
        self._prefix = prefix
        self._clock = clock
        self._sleep = sleep

    def _key(self, kind: str, key: str) -> str:
        # Hashed: addresses and session hashes become short keys every backend accepts.
        digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        return f"{self._prefix}:{kind}:{digest}"

    def take(self, keys: Sequence[tuple[str, str]], n: int) -> float:
        """Take `n` tokens from every (kind, key) bucket; 0.0 when granted (see `RateLimiter`)."""
        wanted = sorted({(k, key) for k, key in keys if key and k in self._rates})
        if not wanted:
            return 0.0
        names = [self._key(kind, key) for kind, key in wanted]
        locked: list[str] = []
        try:
            for name in names:
                if not self._lock(name + ":lock"):
                    # Other workers are taking from this very bucket all the time:
                    # its owner is sending fast, so the request waits (a 429).
                    return LOCK_WAIT
                locked.append(name + ":lock")
            now = self._clock()
            stored = self._cache.get_many(names)
            levels = []
            wait = 0.0
            for (kind, _), name in zip(wanted, names, strict=True):
                rate = self._rates[kind]
                tokens, then = stored.get(name, (float(rate.burst), now))
                tokens = _refill(rate, tokens, then, now)
                levels.append((name, rate, tokens))
                wait = max(wait, _verdict(rate, tokens, n))
            if wait == 0.0:
                for name, rate, tokens in levels:
                    # Kept until the bucket would be full again; then absent means full.
                    ttl = (rate.burst - tokens + n) / rate.per_second + 1.0
                    self._cache.set(name, (tokens - n, now), timeout=ttl)
            return wait
        except Exception as exc:  # the cache is down or misconfigured
            return self._unchecked("the cache failed: %s", exc)
        finally:
            for lock in locked:
                with contextlib.suppress(Exception):  # else it expires after LOCK_SECONDS
                    self._cache.delete(lock)

    def _lock(self, name: str) -> bool:
        deadline = self._clock() + LOCK_WAIT
        while not self._cache.add(name, 1, timeout=LOCK_SECONDS):
            if self._clock() >= deadline:
                return False
            self._sleep(0.002)
        return True

    def _unchecked(self, message: str, *args: object) -> float:
        diagnostics.increment("django.rate_limit_unchecked")
        diagnostics.log_burst(
            "django.rate_limit_unchecked",
            "browser endpoint: rate limit not checked, request let through: " + message,
            *args,
        )
        return 0.0
