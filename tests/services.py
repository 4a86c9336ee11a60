"""Real PostgreSQL and Redis for the tests: find them, and give each test its own table or stream.

`postgres_dsn()` and `redis_url()` return a working address or skip the test
(fail it when ``EVENTTRACKING_REQUIRE_SERVICES=1``). Set
``EVENTTRACKING_TEST_POSTGRES`` / ``EVENTTRACKING_TEST_REDIS`` to point
elsewhere. `pg_table()` and `redis_stream()` hand out unique names and drop
what they name afterwards, so tests never collide, even when run in parallel.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import uuid
from collections.abc import Iterator

import pytest

from conftest import REQUIRE_SERVICES, service_unavailable

POSTGRES_CANDIDATES = (
    "postgresql://root@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def require_driver(module: str, extra: str) -> None:
    """At module level: skip the test module without `module` (fail it in CI)."""
    if importlib.util.find_spec(module) is None:
        reason = f"{module} is not installed; pip install -e '.[test,{extra}]'"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (EVENTTRACKING_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


@functools.cache
def _find_postgres() -> tuple[str | None, str]:
    try:
        import psycopg
    except ImportError as exc:
        return None, f"psycopg is not installed ({exc}); pip install -e '.[test,postgres]'"
    env = os.environ.get("EVENTTRACKING_TEST_POSTGRES")
    problems = []
    for dsn in (env,) if env else POSTGRES_CANDIDATES:
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                return dsn, ""
        except psycopg.Error as exc:
            problems.append(f"{dsn}: {str(exc).strip().splitlines()[0]}")
    return None, "; ".join(problems)


def postgres_dsn() -> str:
    """A PostgreSQL URL that answers, or skip (fail in CI)."""
    dsn, reason = _find_postgres()
    if dsn is None:
        service_unavailable("PostgreSQL", reason)
        raise AssertionError("unreachable")
    return dsn


@functools.cache
def _find_redis() -> tuple[str | None, str]:
    try:
        import redis
    except ImportError as exc:
        return None, f"redis is not installed ({exc}); pip install -e '.[test,redis]'"
    url = os.environ.get("EVENTTRACKING_TEST_REDIS", REDIS_DEFAULT)
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        return None, f"{url}: {exc}"
    return url, ""


def redis_url() -> str:
    """A Redis URL that answers, or skip (fail in CI)."""
    url, reason = _find_redis()
    if url is None:
        service_unavailable("Redis", reason)
        raise AssertionError("unreachable")
    return url


def unique(prefix: str) -> str:
    """A fresh name: `prefix`, underscore, 10 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def drop_table(dsn: str, table: str) -> None:
    """Drop an events table with its types and version tables, if they exist."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_types", "{table}_migrations"')


@contextlib.contextmanager
def pg_table(prefix: str = "et_test") -> Iterator[tuple[str, str]]:
    """(dsn, unique table name); the table is dropped afterwards."""
    dsn = postgres_dsn()
    table = unique(prefix)
    try:
        yield dsn, table
    finally:
        drop_table(dsn, table)


def table_url(dsn: str, table: str) -> str:
    """The store URL of `table`: `dsn` with ``?table=``."""
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


@contextlib.contextmanager
def redis_stream(prefix: str = "et-test") -> Iterator[tuple[str, str]]:
    """(url, unique stream name); the stream, its dead letters and types are deleted afterwards."""
    import redis

    url = redis_url()
    stream = unique(prefix)
    try:
        yield url, stream
    finally:
        with redis.Redis.from_url(url) as client:
            client.delete(stream, f"{stream}:dead", f"{stream}:types")
