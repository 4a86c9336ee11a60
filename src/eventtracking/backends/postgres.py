"""Store events in PostgreSQL (``pip install 'event-tracking[postgres]'``).

A plain writer: each `send_batch` is one COPY in one transaction (see
`store.postgres`), split only beyond `batch_size` rows; `send` is a batch of
one. It holds nothing back and retries nothing: a lost connection raises
`RetryableError` (the connection is re-opened on the next call), a batch
PostgreSQL rejects raises `TerminalError`. Writes are idempotent on the
event id, so a batch written twice is stored once. Each documentation
version an event refers to (``event["meta"]``) is written once, in the
transaction of the first batch that needs it.

Built from configuration, the backend runs behind the delivery worker
(`eventtracking.delivery.DeliveryBackend`, buffered mode with a journal):
emit never waits for the server, and batches, retries, the journal and
dead letters are the worker's. In code, wrap it yourself::

    DeliveryBackend(PostgresBackend("postgresql://app@db/analytics"), name="pg")

The constructor connects and creates or migrates the schema, so a wrong URL
fails at start-up with a StoreError. Read the table with
`store.postgres.PostgresStore` or ``eventtracking query --store
'postgresql://...?table=NAME'``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..registry.registry import unseen_metadata
from ..store.postgres import PostgresStore
from . import check_batch_size


class PostgresBackend:
    """Write events to `table` in the PostgreSQL database at `dsn`; thread- and fork-safe.

    `dsn` is a ``postgresql://`` URL or a libpq ``key=value`` string; `table`
    may be ``NAME`` or ``SCHEMA.NAME`` (a ``?table=`` in the URL works too).
    `batch_size` is the most rows per COPY and transaction, and the delivery
    worker's batch size by default: each batch costs a commit (a WAL flush),
    and 5,000 events per commit keep that under a tenth of a microsecond per
    event. A forked child opens its own connection. `close()` is idempotent;
    sending afterwards raises RuntimeError.
    """

    delivery_defaults: ClassVar[Mapping[str, Any] | None] = {"mode": "buffered"}
    # Only reads events (rows are new objects): it may get shared contexts.
    leaves_events_unchanged: ClassVar[bool] = True

    def __init__(
        self,
        dsn: str,
        table: str | None = None,
        batch_size: int = 5000,
        connect_timeout: float = 10.0,
    ) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.store = PostgresStore(dsn, table, create=True, connect_timeout=connect_timeout)
        self.table = self.store.names.events
        self._seen_types: set[str] = set()
        self._lock = threading.Lock()  # one batch at a time: the seen types go with it
        self._closed = False

    @property
    def destination(self) -> str:
        """The server, database and table (no password): names the default journal."""
        return self.store.where

    def send(self, event: dict[str, Any]) -> None:
        """Write one event (a batch of one)."""
        self.send_batch([event])

    def send_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """Write `events`: one COPY per `batch_size` rows, each in one transaction.

        RetryableError when the connection failed (writing again is safe),
        TerminalError when PostgreSQL rejected a batch, RuntimeError after close.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"PostgresBackend({self.store.where!r}) is closed")
            for start in range(0, len(events), self.batch_size):
                self._write(events[start : start + self.batch_size])

    def _write(self, events: Sequence[dict[str, Any]]) -> None:
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

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing is ever held back: True."""
        return True

    def close(self) -> None:
        """Close the connection (after a write in progress); idempotent."""
        if self._closed:
            return
        self._closed = True
        self.store.close()
