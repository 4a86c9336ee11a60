"""Publish events to a Redis stream (``pip install 'event-tracking[redis]'``).

Each event becomes one stream entry with a single field, ``event``, holding
the event's JSON bytes (the one encoder, `serialization.dumps`). A plain
writer: each `send_batch` is one pipelined round trip of XADD commands
(split only beyond `batch_size` events), `send` a batch of one. It holds
nothing back and retries nothing: a lost connection raises `RetryableError`,
a command Redis refuses raises `TerminalError`. Built from configuration it
runs behind the delivery worker (buffered mode with a journal), which
batches, retries and journals; in code, wrap it in
`eventtracking.delivery.DeliveryBackend` yourself.

`maxlen` caps the stream (``MAXLEN ~ maxlen`` with ``approximate=True``, the
cheap form Redis trims in whole nodes). Entries trimmed before a consumer
group read them are gone: size it above the longest backlog you expect.

Delivery is at least once: a connection lost in the middle of a pipeline
may have published part of the batch, which the delivery worker then
publishes again. Consumers write to stores that de-duplicate on the event
id, so no reader sees the duplicate (``eventtracking consume``). The client
connects lazily: a wrong URL shows on the first write, as a RetryableError.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from ..exceptions import MissingExtraError, RetryableError, TerminalError
from ..logsafe import without_password
from ..registry.registry import unseen_metadata
from ..serialization import dumps, skip_unencodable
from . import check_batch_size

try:
    import redis
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtraError("redis", "redis") from exc

FIELD: Final = b"event"


def types_key(stream: str) -> str:
    """The hash that holds, by id, the documentation versions the stream's events refer to."""
    return f"{stream}:types"


class RedisStreamBackend:
    """Append events to the Redis stream `stream` at `url` (``redis://HOST:PORT/DB``).

    Thread- and fork-safe (redis-py gives a forked child its own
    connections). `batch_size` is the most XADDs per round trip, and the
    delivery worker's batch size by default. `close()` is idempotent;
    sending afterwards raises RuntimeError.
    """

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}
    # Only reads and encodes: siblings may share its encoding, durable mode sends the
    # journal's bytes.
    leaves_events_unchanged: ClassVar[bool] = True

    def __init__(
        self,
        url: str,
        stream: str,
        maxlen: int | None = None,
        approximate: bool = True,
        batch_size: int = 500,
        socket_timeout: float = 10.0,
    ) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream must be a non-empty string, not {stream!r}")
        if maxlen is not None and (
            isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1
        ):
            raise ValueError(f"maxlen must be a positive int or None, not {maxlen!r}")
        self.batch_size = check_batch_size(batch_size)
        self.url = url
        self.stream = stream
        self._types_key = types_key(stream)
        self._seen_types: set[str] = set()
        self._lock = threading.Lock()  # one batch at a time: the seen types go with it
        self._closed = False
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._trim: tuple[Any, ...] = ()
        if maxlen is not None:
            self._trim = ("MAXLEN", "~", maxlen) if approximate else ("MAXLEN", maxlen)

    @property
    def destination(self) -> str:
        """The server, database and stream (no password): names the default journal."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path} {self.stream}"

    def send(self, event: dict[str, Any]) -> None:
        """Publish one event (a batch of one)."""
        self.send_batch([event])

    def send_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """Publish `events`: one pipelined round trip per `batch_size` of them.

        RetryableError when the connection failed (publishing again is safe),
        TerminalError when Redis refused, RuntimeError after close.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"RedisStreamBackend({self.stream!r}) is closed")
            for start in range(0, len(events), self.batch_size):
                self._publish(events[start : start + self.batch_size])

    def _publish(self, events: Sequence[dict[str, Any]]) -> None:
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
                f"Redis at {without_password(self.url)}: publishing {len(events)} events to "
                f"{self.stream!r} failed ({exc}); publishing them again is safe"
            ) from exc
        except redis.RedisError as exc:
            raise TerminalError(
                f"Redis at {without_password(self.url)} rejected {len(events)} events for "
                f"{self.stream!r}: {exc}"
            ) from exc
        finally:
            pipe.reset()

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing is ever held back: True."""
        return True

    def close(self) -> None:
        """Close the connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.client.close()
