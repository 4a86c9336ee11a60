"""Progress bars on replay and consume: drawn when stderr is a terminal, absent otherwise.

The commands run in subprocesses whose stderr is a real pseudo-terminal (or a
pipe), the way a person (or a log file) would see them.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eventtracking.store.sqlite import SQLiteStore, row_for
from services import redis_stream

N = 3000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENV = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def events(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"id-{i:06d}", "name": "a.b", "timestamp": T0 + timedelta(seconds=i),
         "data": {"i": i}, "context": {}}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "source.db"
    store = SQLiteStore(path)
    store.write([row_for(e) for e in events(N)])
    store.close()
    return str(path)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "eventtracking", *args]


def run_on_a_terminal(
    args: list[str], stop_after: float | None = None, until: str | None = None
) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal: (exit status, stdout, what the terminal showed).

    With `stop_after`, SIGTERM is sent that many seconds after `until` appeared.
    """
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL, env=ENV
    )
    os.close(secondary)
    shown = b""
    seen_at: float | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other end closed: the process has exited
                break
            if not chunk:
                break
            shown += chunk
        text = ANSI.sub("", shown.decode(errors="replace"))
        if until is not None and seen_at is None and until in text:
            seen_at = time.monotonic()
        if (
            stop_after is not None
            and seen_at is not None
            and time.monotonic() > seen_at + stop_after
        ):
            process.send_signal(signal.SIGTERM)
            stop_after = None
        if process.poll() is not None and not ready:
            break
    os.close(main)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.wait(timeout=30)
    return process.returncode, out, ANSI.sub("", shown.decode(errors="replace"))


def test_replay_draws_a_bar_on_a_terminal(source: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    code, out, shown = run_on_a_terminal(command("replay", "--from", source, "--to", target))
    assert code == 0, shown
    assert f"sent {N} event(s)" in out
    assert "replaying" in shown and f"{N}/{N}" in shown and "100%" in shown


def test_replay_draws_no_bar_into_a_pipe(source: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    result = subprocess.run(
        command("replay", "--from", source, "--to", target),
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"sent {N} event(s)" in result.stdout
    assert result.stderr == ""  # no bar, no control characters


def test_consume_draws_a_bar_on_a_terminal_and_lines_into_a_pipe(tmp_path: Path) -> None:
    from eventtracking.backends.redis_stream import RedisStreamBackend

    with redis_stream() as (url, name):
        backend = RedisStreamBackend(url, name)
        backend.send_batch(events(N))
        backend.close()
        args = ["consume", url, "--stream", name, "--group", "g", "--report-every", "0.2"]
        code, _, shown = run_on_a_terminal(
            command(*args, "--to", str(tmp_path / "a.db")), stop_after=1.0, until=f"{N}/{N}"
        )
        assert code == 0, shown
        assert f"consume {name}/g" in shown and f"{N}/{N}" in shown and "lag 0" in shown
        assert "stopped:" in shown  # the last figures stay on the screen
        assert f"{N} written" not in shown.split("stopped:")[0]  # the bar stood in for lines

        backend = RedisStreamBackend(url, name)
        backend.send_batch(events(N + 10)[N:])
        backend.close()
        process = subprocess.Popen(
            command(*args, "--group", "h", "--to", str(tmp_path / "b.db")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )  # fmt: skip
        time.sleep(3)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
        assert f"{N + 10} written" in errors and "\x1b[" not in errors
