"""Every backend under the one contract (see backend_contract.py).

PostgreSQL and Redis run against the real servers (skipped locally when they
are absent, required in CI).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from backend_contract import CHECKS, STORE_CHECKS, Subject
from eventtracking.backends.jsonl import JSONLinesBackend, read_jsonl
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.testing import InMemoryBackend
from services import pg_table, redis_stream, table_url

Factory = Callable[[Path], contextlib.AbstractContextManager[Subject]]


@contextlib.contextmanager
def sqlite_subject(tmp: Path) -> Iterator[Subject]:
    path = tmp / "events.db"
    backend = SQLiteBackend(path, batch_size=2, max_delay=60)
    reader = SQLiteStore(path)
    try:
        yield Subject(backend, lambda: reader.query(Query(limit=None)), is_store=True)
    finally:
        backend.close()
        reader.close()


@contextlib.contextmanager
def jsonl_subject(tmp: Path) -> Iterator[Subject]:
    path = tmp / "events.jsonl"
    backend = JSONLinesBackend(path)
    try:
        yield Subject(backend, lambda: read_jsonl(path)[0])
    finally:
        backend.close()


@contextlib.contextmanager
def memory_subject(tmp: Path) -> Iterator[Subject]:
    backend = InMemoryBackend()
    yield Subject(backend, lambda: list(backend.events))


@contextlib.contextmanager
def postgres_subject(tmp: Path) -> Iterator[Subject]:
    from eventtracking.backends.postgres import PostgresBackend
    from eventtracking.store.postgres import PostgresStore

    with pg_table("et_contract") as (dsn, table):
        backend = PostgresBackend(dsn, table, batch_size=2, max_delay=60)
        reader = PostgresStore(table_url(dsn, table), create=False)
        try:
            yield Subject(backend, lambda: reader.query(Query(limit=None)), is_store=True)
        finally:
            backend.close()
            reader.close()


@contextlib.contextmanager
def redis_subject(tmp: Path) -> Iterator[Subject]:
    import redis

    from eventtracking.backends.redis_stream import RedisStreamBackend

    with redis_stream("et-contract") as (url, stream):
        backend = RedisStreamBackend(url, stream, batch_size=2, max_delay=60)
        client = redis.Redis.from_url(url)

        def read() -> list[dict[str, Any]]:
            return [orjson.loads(fields[b"event"]) for _, fields in client.xrange(stream)]

        try:
            yield Subject(backend, read)
        finally:
            backend.close()
            client.close()


STORES = {"sqlite", "postgres"}
FACTORIES: dict[str, Factory] = {
    "sqlite": sqlite_subject,
    "jsonl": jsonl_subject,
    "memory": memory_subject,
    "postgres": postgres_subject,
    "redis": redis_subject,
}


def cases() -> list[Any]:
    out = []
    for name, factory in FACTORIES.items():
        for check in CHECKS + (STORE_CHECKS if name in STORES else ()):
            marks = []
            if name in ("postgres", "redis"):
                marks.append(pytest.mark.services)
            label = f"{name}-{check.__name__.removeprefix('check_')}"
            out.append(pytest.param(factory, check, id=label, marks=marks))
    return out


@pytest.mark.parametrize(("factory", "check"), cases())
def test_backend_honours_the_contract(
    factory: Factory, check: Callable[[Subject], None], tmp_path: Path
) -> None:
    with factory(tmp_path) as subject:
        check(subject)
