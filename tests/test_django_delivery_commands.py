"""Management commands for consume, replay and dead letters, mirroring the core CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

import django_support  # noqa: F401  (configures Django)
from eventtracking.delivery import DeadLetterStore
from eventtracking.store.sqlite import SQLiteStore, row_for
from services import redis_stream

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def event(n: int, name: str = "page.viewed") -> dict[str, Any]:
    return {
        "id": f"ev-{n:04d}",
        "name": name,
        "timestamp": T0 + timedelta(seconds=n),
        "data": {"n": n},
        "context": {"user_id": n % 3},
    }


def ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(row[0] for row in db.execute("SELECT id FROM events"))


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    """The configured store (EVENT_TRACKING_STORE) holding 6 events of two names."""
    path = tmp_path / "events.db"
    db = SQLiteStore(path)
    db.write([row_for(event(n, "video.played" if n % 2 else "page.viewed")) for n in range(6)])
    db.close()
    settings.EVENT_TRACKING_STORE = str(path)
    return path


def test_replay_reads_the_configured_store(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    call_command("eventtracking_replay", "--to", str(target), "--name", "video.*")
    assert ids(target) == ["ev-0001", "ev-0003", "ev-0005"]


def test_replay_dry_run_and_an_explicit_source(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    db = SQLiteStore(other)
    db.write([row_for(event(100))])
    db.close()
    call_command("eventtracking_replay", "--from", str(other), "--to", "x.db", "--dry-run")
    assert "would send 1 event(s) to x.db" in capsys.readouterr().out


def test_replay_errors_are_command_errors(store: Path) -> None:
    with pytest.raises(CommandError, match="--to: not valid JSON"):
        call_command("eventtracking_replay", "--to", "{nope")


@pytest.fixture
def letters(tmp_path: Path) -> Path:
    path = tmp_path / "dead-letters.db"
    dead = DeadLetterStore(path)
    dead.add("http", [event(1), event(2, "video.played")], "HTTP 400: bad", 1, 1.0, 2.0)
    dead.close()
    return path


def test_deadletters_list_show_and_replay(
    letters: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("eventtracking_deadletters", "list", "--dead-letters", str(letters), "--json")
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(item["name"] for item in listed) == ["page.viewed", "video.played"]
    call_command("eventtracking_deadletters", "show", "--dead-letters", str(letters), "1")
    shown = json.loads(capsys.readouterr().out)
    assert shown["event"]["id"] == "ev-0001" and shown["reason"] == "HTTP 400: bad"
    target = tmp_path / "target.db"
    call_command(
        "eventtracking_deadletters", "replay", "--dead-letters", str(letters), "--to", str(target),
        "--name", "video.*",
    )  # fmt: skip
    assert ids(target) == ["ev-0002"]
    remaining = DeadLetterStore(letters, create=False)
    assert remaining.count() == 1  # the delivered one left the store
    remaining.close()


def test_deadletters_errors(letters: Path) -> None:
    with pytest.raises(CommandError, match="no dead letter 99"):
        call_command("eventtracking_deadletters", "show", "--dead-letters", str(letters), "99")
    with pytest.raises(CommandError):
        call_command("eventtracking_deadletters")  # a subcommand is required


CONSUMER = textwrap.dedent(
    """
    import sys
    import django
    from django.conf import settings
    settings.configure(INSTALLED_APPS=["eventtracking.django"], EVENT_TRACKING_STORE=sys.argv[1])
    django.setup()
    from django.core.management import call_command
    call_command("eventtracking_consume", sys.argv[2], "--stream", sys.argv[3], "--group", "g",
                 "--report-every", "0.2", "--json")
    """
)


def test_consume_writes_a_stream_into_the_configured_store(tmp_path: Path) -> None:
    from eventtracking.backends.redis_stream import RedisStreamBackend

    target = tmp_path / "consumed.db"
    with redis_stream() as (url, name):
        backend = RedisStreamBackend(url, name)
        backend.send_batch([event(n) for n in range(50)])
        backend.close()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        process = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, str(target), url, name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if target.exists() and len(ids(target)) == 50:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert len(ids(target)) == 50
    assert json.loads(out.strip().splitlines()[-1])["written"] == 50
