"""Token buckets for the browser endpoint: a limit per session and per IP address.

In-process only: each worker process keeps its own buckets, so with N
processes a client can send up to N times the configured rate. That bounds
abuse by one client cheaply; a shared limit belongs in the proxy or a cache.
Memory is bounded: beyond `max_keys` keys the least recently used go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from .conf import Rate

__all__ = ["RateLimiter"]


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
                tokens = min(float(rate.burst), tokens + (now - then) * rate.per_second)
                levels.append((bucket, tokens))
                if n > rate.burst:
                    wait = float("inf")
                elif tokens < n:
                    wait = max(wait, (n - tokens) / rate.per_second)
            spend = n if wait == 0.0 else 0
            for bucket, tokens in levels:
                self._buckets[bucket] = (tokens - spend, now)  # re-inserted: most recent last
            while len(self._buckets) > self._max_keys:
                del self._buckets[next(iter(self._buckets))]
            return wait
