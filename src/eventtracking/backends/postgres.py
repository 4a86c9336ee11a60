"""Store events in PostgreSQL (``pip install 'event-tracking[postgres]'``).

Events are buffered and written in batches of `batch_size`, each with one
COPY in one transaction (see `store.postgres`); a batch is also written
`max_delay` seconds after its first event arrived, on `flush()`, on
`close()`, before `os.fork()` and at interpreter exit. Writes are idempotent
on the event id, so a batch written twice is stored once. Each documentation
version an event refers to (``event["meta"]``) is written once, in the
transaction of the first batch that needs it.

The constructor connects and creates or migrates the schema, so a wrong URL
fails at start-up with a StoreError. A connection lost later, even in the
middle of a batch, is re-opened and the batch written again, up to `retries`
times with exponential backoff; after that the batch is kept for the next
attempt (see `backends._batching`). Events still buffered are lost if the
process is killed: wrap the backend in the delivery worker's journal when
that matters. Read the table with `store.postgres.PostgresStore` or
``eventtracking query --store 'postgresql://...?table=NAME'``.
"""

from __future__ import annotations

from typing import Any

from ..registry.registry import unseen_metadata
from ..store.postgres import PostgresStore
from ._batching import BatchBuffer, BufferedBackend


class PostgresBackend(BufferedBackend):
    """Write events to `table` in the PostgreSQL database at `dsn`; thread- and fork-safe.

    `dsn` is a ``postgresql://`` URL or a libpq ``key=value`` string; `table`
    may be ``NAME`` or ``SCHEMA.NAME`` (a ``?table=`` in the URL works too).
    `batch_size` is larger than the SQLite backend's because each batch costs
    a COPY and a commit (a WAL flush): 5,000 events per commit keep that
    under a tenth of a microsecond per event; `max_delay` bounds how long a
    quiet stream waits. At most `max_buffered` events (default 100,000) wait
    while the server is unreachable; beyond that `send` raises RetryableError.
    """

    def __init__(
        self,
        dsn: str,
        table: str | None = None,
        batch_size: int = 5000,
        max_delay: float = 1.0,
        retries: int = 5,
        max_buffered: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.store = PostgresStore(dsn, table, create=True, connect_timeout=connect_timeout)
        self.table = self.store.names.events
        self._seen_types: set[str] = set()
        self._buffer = BatchBuffer(
            self._write,
            label="postgres",
            batch_size=batch_size,
            max_delay=max_delay,
            retries=retries,
            max_buffered=max_buffered,
        )

    def _write(self, events: list[dict[str, Any]]) -> None:
        # Documentation versions go with the first batch that refers to them;
        # they count as written only once that batch is committed.
        seen = self._seen_types
        types = []
        for event in events:
            if "meta" in event:
                if seen is self._seen_types:
                    seen = set(seen)
                types.extend(unseen_metadata(event, seen))
        self.store.write(events, types)
        self._seen_types = seen

    def _release(self) -> None:
        self.store.close()
