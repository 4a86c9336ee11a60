"""The read side of event stores: queries, tails and summaries.

`open_store(location)` opens a store for reading from a path (SQLite) or a
``postgresql://`` URL (``?table=NAME`` picks the table; needs the postgres
extra). Every store offers the same `EventStore` methods, so the CLI works
on any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..exceptions import StoreError
from ..logsafe import without_password


@dataclass(frozen=True)
class Query:
    """What to read: every criterion is optional and they all must hold.

    `names` are glob patterns (``edx.video.*``); `since` is inclusive and
    `until` exclusive; `context` and `data` map a top-level key to the value
    it must have (strings match numbers written the same way).
    """

    names: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    context: tuple[tuple[str, Any], ...] = ()
    data: tuple[tuple[str, Any], ...] = ()
    limit: int | None = 100
    newest_first: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise ValueError(f"limit must be a non-negative int or None, not {self.limit!r}")
        for bound in (self.since, self.until):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("since/until must be timezone-aware datetimes")


class EventStore(Protocol):
    """What every store offers readers."""

    def query(self, query: Query) -> list[dict[str, Any]]: ...

    def count(self, query: Query) -> int: ...

    def tail(self, n: int = 10) -> list[dict[str, Any]]: ...

    def follow(self, poll_interval: float = 0.5, n: int = 10) -> Iterator[dict[str, Any]]: ...

    def counts_by_name(self, query: Query | None = None) -> list[tuple[str, int]]: ...

    def counts_by_hour(self, query: Query | None = None) -> list[tuple[datetime, int]]: ...

    def time_range(self) -> tuple[datetime, datetime] | None: ...

    def close(self) -> None: ...


def open_store(location: str) -> EventStore:
    """Open the store at `location` for reading; StoreError says what is wrong."""
    if location.startswith(("postgres://", "postgresql://")):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:  # MissingExtraError names the extra to install
            raise StoreError(str(exc)) from exc
        try:
            return PostgresStore(location, create=False)
        except ValueError as exc:  # a bad ?table= name
            raise StoreError(f"{without_password(location)}: {exc}") from exc
    from .sqlite import SQLiteStore

    return SQLiteStore(location, create=False)


def describe_event(
    event: dict[str, Any], metadata: Callable[[str], dict[str, Any] | None]
) -> dict[str, Any]:
    """The documentation an event refers to: ``{"type": ..., "contexts": {name: ...}}``.

    `metadata` looks a version up by id (a store's ``metadata`` method).
    """
    meta = event.get("meta") or {}
    out: dict[str, Any] = {}
    if isinstance(meta.get("type"), str):
        out["type"] = metadata(meta["type"])
    contexts = meta.get("contexts")
    if isinstance(contexts, dict):
        out["contexts"] = {name: metadata(type_id) for name, type_id in contexts.items()}
    return out
