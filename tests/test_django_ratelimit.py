"""The shared rate limit: N worker processes take from one budget kept in a Django cache.

The budget is proven shared by two real processes, each with its own limiter,
over Django's database cache on one SQLite file; the default (per-process
buckets) is shown to give each process the whole budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.cache import caches
from django.test import Client

import django_support  # noqa: F401  (configures Django)
from django_support import install, memory
from eventtracking.django.conf import Rate
from eventtracking.django.ratelimit import CacheRateLimiter
from eventtracking.exceptions import ImproperlyConfigured
from eventtracking.testing import InMemoryBackend
from services import pg_table

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import django
    from django.conf import settings

    database, mode, go, attempts = (json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]),
                                    int(sys.argv[4]))
    settings.configure(
        INSTALLED_APPS=[],
        DATABASES={"default": database},
        CACHES={"shared": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                           "LOCATION": database.pop("CACHE_TABLE")}},
    )
    django.setup()
    from django.core.cache import caches
    from django.core.management import call_command
    from eventtracking import diagnostics
    from eventtracking.django.conf import Rate
    from eventtracking.django.ratelimit import CacheRateLimiter, RateLimiter

    if mode == "create":
        call_command("createcachetable", verbosity=0)
        sys.exit(0)
    rates = [("ip", Rate(100, 100 / 3600))]  # '100/h': a burst of 100, then 1 every 36 s
    limiter = (CacheRateLimiter(rates, caches["shared"]) if mode == "shared"
               else RateLimiter(rates))
    while not go.exists():  # both workers start together
        time.sleep(0.005)
    granted = sum(1 for _ in range(attempts) if limiter.take([("ip", "203.0.113.9")], 1) == 0.0)
    unchecked = diagnostics.snapshot().get("django.rate_limit_unchecked", 0)
    print(json.dumps({"granted": granted, "unchecked": unchecked}))
    """
)


def sqlite_database(tmp_path: Path) -> dict[str, Any]:
    # IMMEDIATE: a transaction takes the write lock first and waits for it, so
    # Django's cache never drops a write as "database is locked" under contention.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "cache.sqlite3"),
        "OPTIONS": {"timeout": 60, "transaction_mode": "IMMEDIATE"},
        "CACHE_TABLE": "rate_cache",
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The database cache's database: a SQLite file, or a fresh table in the real PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path)
        return
    with pg_table("et_rate") as (dsn, table):
        url = urlsplit(dsn)
        yield {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/"),
            "USER": url.username or "",
            "HOST": url.hostname or "",
            "PORT": str(url.port or 5432),
            "CACHE_TABLE": table,
        }


def run_workers(
    tmp_path: Path, mode: str, database: dict[str, Any], attempts: int = 150
) -> list[dict[str, int]]:
    go = tmp_path / "go"
    base = [sys.executable, "-c", WORKER, json.dumps(database)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    created = subprocess.run([*base, "create", str(go), "0"], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert created.returncode == 0, created.stderr
    workers = [
        subprocess.Popen([*base, mode, str(go), str(attempts)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    time.sleep(1.0)  # both are up and waiting
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes_share_one_budget_through_the_database_cache(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    results = run_workers(tmp_path, "shared", database)
    assert all(r["unchecked"] == 0 for r in results), results  # every take was really checked
    total = sum(r["granted"] for r in results)
    # 100 at once, plus at most one refilled while the test runs (1 every 36 s).
    assert 100 <= total <= 101, results


def test_by_default_each_process_has_its_own_budget(tmp_path: Path) -> None:
    results = run_workers(tmp_path, "local", sqlite_database(tmp_path))
    assert [r["granted"] for r in results] == [100, 100]


class BrokenCache:
    """A cache whose every call fails, as when its server is down."""

    def add(self, *args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("cache down")

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache down")


def test_a_failing_cache_lets_requests_through_and_counts_them() -> None:
    from eventtracking import diagnostics

    before = diagnostics.snapshot().get("django.rate_limit_unchecked", 0)
    limiter = CacheRateLimiter([("ip", Rate(1, 1.0))], BrokenCache())
    assert limiter.take([("ip", "a")], 1) == 0.0 and limiter.take([("ip", "a")], 1) == 0.0
    assert diagnostics.snapshot()["django.rate_limit_unchecked"] == before + 2


def test_the_cache_limiter_keeps_the_bucket_rules() -> None:
    cache = _locmem("rules")
    now = [1000.0]
    limiter = CacheRateLimiter([("ip", Rate(5, 1.0)), ("session", None)], cache,
                               clock=lambda: now[0])  # fmt: skip
    assert limiter.take([("ip", "x"), ("session", "s")], 3) == 0.0
    assert limiter.take([("ip", "x")], 3) == pytest.approx(1.0)  # 2 left: 1 s for the third
    assert limiter.take([("ip", "x")], 6) == float("inf")  # more than the burst, ever
    now[0] += 1.0
    assert limiter.take([("ip", "x")], 3) == 0.0
    assert limiter.take([("ip", "")], 100) == 0.0  # no key: not limited


def _locmem(name: str) -> Any:
    from django.core.cache.backends.locmem import LocMemCache

    return LocMemCache(f"eventtracking-test-{name}", {})


# -- the endpoint ----------------------------------------------------------------------------

GOOD = {"name": "client.video.played", "data": {"video_id": "v1"}}
SHARED_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"},
}


@pytest.fixture
def stored(settings: Any, db: None) -> InMemoryBackend:
    return memory(install(settings))


def post(client: Client, body: Any, **extra: Any) -> Any:
    return client.post("/tracking/events", json.dumps(body), content_type="application/json",
                       **extra)  # fmt: skip


def test_the_endpoint_takes_from_the_shared_cache(stored: InMemoryBackend, settings: Any) -> None:
    settings.CACHES = SHARED_CACHES
    settings.EVENT_TRACKING_BROWSER = {
        "RATE_LIMIT": {"ip": "5/h", "session": None},
        "RATE_LIMIT_CACHE": "shared",
    }
    # Another worker, with its own limiter over the same cache, spends 4 of the 5.
    other = CacheRateLimiter([("ip", Rate(5, 5 / 3600))], caches["shared"])
    assert other.take([("ip", "10.9.8.7")], 4) == 0.0
    client = Client()
    assert post(client, GOOD, REMOTE_ADDR="10.9.8.7").status_code == 200
    refused = post(client, GOOD, REMOTE_ADDR="10.9.8.7")
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert len(stored.events) == 1


def test_without_the_setting_the_endpoint_keeps_per_process_buckets(
    stored: InMemoryBackend, settings: Any
) -> None:
    settings.CACHES = SHARED_CACHES
    settings.EVENT_TRACKING_BROWSER = {"RATE_LIMIT": {"ip": "5/h", "session": None}}
    other = CacheRateLimiter([("ip", Rate(5, 5 / 3600))], caches["shared"])
    assert other.take([("ip", "10.9.8.6")], 5) == 0.0  # the cache's budget is spent...
    assert post(Client(), [GOOD] * 5, REMOTE_ADDR="10.9.8.6").status_code == 200  # ...not ours


@pytest.mark.parametrize("alias", ["nowhere", 3, ""])
def test_a_bad_cache_alias_is_a_configuration_error(settings: Any, alias: Any) -> None:
    from eventtracking.django.conf import _browser

    settings.CACHES = SHARED_CACHES
    settings.EVENT_TRACKING_BROWSER = {"RATE_LIMIT_CACHE": alias}
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_CACHE: must name a cache in CACHES"):
        _browser()


def test_a_dummy_cache_would_limit_nothing_and_is_refused(settings: Any) -> None:
    from eventtracking.django.conf import _browser

    settings.CACHES = {
        **SHARED_CACHES,
        "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    settings.EVENT_TRACKING_BROWSER = {"RATE_LIMIT_CACHE": "dummy"}
    with pytest.raises(ImproperlyConfigured, match="DummyCache, which keeps nothing"):
        _browser()
