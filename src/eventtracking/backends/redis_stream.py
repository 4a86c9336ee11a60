"""Publish events to a Redis stream (``pip install 'event-tracking[redis]'``).

Each event becomes one stream entry with a single field, ``event``, holding
the event's JSON bytes (the one encoder, `serialization.dumps`). Events are
buffered and published in batches of `batch_size` with one pipelined round
trip of XADD commands; a batch is also published `max_delay` seconds after
its first event arrived, on `flush()`, on `close()`, before `os.fork()` and
at interpreter exit.

`maxlen` caps the stream (``MAXLEN ~ maxlen`` with ``approximate=True``, the
cheap form Redis trims in whole nodes). Entries trimmed before a consumer
group read them are gone: size it above the longest backlog you expect.

Delivery is at least once: a connection lost in the middle of a pipeline is
retried (up to `retries` times, with backoff) and may publish part of a batch
twice. Consumers write to stores that de-duplicate on the event id, so no
reader sees the duplicate (``eventtracking consume``). The client connects
lazily: a wrong URL shows on the first write, as a RetryableError.
"""

from __future__ import annotations

from typing import Any, Final

from ..exceptions import MissingExtraError, RetryableError, TerminalError
from ..registry.registry import unseen_metadata
from ..serialization import dumps
from ._batching import BatchBuffer, BufferedBackend, skip_unencodable

try:
    import redis
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtraError("redis", "redis") from exc

FIELD: Final = b"event"


def types_key(stream: str) -> str:
    """The hash that holds, by id, the documentation versions the stream's events refer to."""
    return f"{stream}:types"


class RedisStreamBackend(BufferedBackend):
    """Append events to the Redis stream `stream` at `url` (``redis://HOST:PORT/DB``).

    Thread- and fork-safe (redis-py gives a forked child its own connections).
    At most `max_buffered` events (default 100,000) wait while Redis is
    unreachable; beyond that `send` raises RetryableError.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        maxlen: int | None = None,
        approximate: bool = True,
        batch_size: int = 500,
        max_delay: float = 0.5,
        retries: int = 5,
        max_buffered: int | None = None,
        socket_timeout: float = 10.0,
    ) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream must be a non-empty string, not {stream!r}")
        if maxlen is not None and (
            isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1
        ):
            raise ValueError(f"maxlen must be a positive int or None, not {maxlen!r}")
        self.url = url
        self.stream = stream
        self._types_key = types_key(stream)
        self._seen_types: set[str] = set()
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._trim: tuple[Any, ...] = ()
        if maxlen is not None:
            self._trim = ("MAXLEN", "~", maxlen) if approximate else ("MAXLEN", maxlen)
        self._buffer = BatchBuffer(
            self._publish,
            label="redis",
            batch_size=batch_size,
            max_delay=max_delay,
            retries=retries,
            max_buffered=max_buffered,
        )

    def _publish(self, events: list[dict[str, Any]]) -> None:
        head = ("XADD", self.stream, *self._trim, "*", FIELD)
        pipe = self.client.pipeline(transaction=False)
        # Documentation versions go to a hash beside the stream, before the
        # events that refer to them, so that any consumer of the group (and a
        # consumer that starts after trimming) can look them up by id.
        seen = set(self._seen_types)
        for event in events:
            if "meta" in event:
                for version in unseen_metadata(event, seen):
                    pipe.hsetnx(self._types_key, version.id, dumps(version.to_dict()))
        for event in events:
            try:
                payload = dumps(event)
            except TypeError as exc:  # beyond repair (a lone surrogate): skip, count, log
                skip_unencodable("redis", event, exc)
                continue
            pipe.execute_command(*head, payload)  # type: ignore[no-untyped-call]
        try:
            pipe.execute()
            self._seen_types = seen  # only once they are surely in Redis
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RetryableError(
                f"Redis at {self.url}: publishing {len(events)} events to {self.stream!r} "
                f"failed ({exc}); publishing them again is safe"
            ) from exc
        except redis.RedisError as exc:
            raise TerminalError(
                f"Redis at {self.url} rejected {len(events)} events for {self.stream!r}: {exc}"
            ) from exc
        finally:
            pipe.reset()

    def _release(self) -> None:
        self.client.close()
