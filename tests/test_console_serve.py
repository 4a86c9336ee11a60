"""``eventtracking serve``: it starts and serves, and each start-up problem is one line, exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from console_support import free_port
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.cli import cli

TOKEN = "a-token-of-twenty-chars"


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = tmp_path / "events.db"
    backend = SQLiteBackend(path)
    backend.send({"id": "e1", "name": "a.b", "timestamp": "2026-01-01T00:00:00+00:00", "data": {}})
    backend.close()
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", *args])
    return result.exit_code, result.output


def test_a_missing_store_is_one_line_exit_2(tmp_path: Path) -> None:
    code, output = run("--store", str(tmp_path / "nope.db"), "--port", str(free_port()))
    assert code == 2
    assert output.strip().splitlines() == [
        f"Error: {tmp_path / 'nope.db'}: no such event store (run `eventtracking demo`?)"
    ]


def test_a_file_that_is_not_a_store_is_one_line_exit_2(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    code, output = run("--store", str(other), "--port", str(free_port()))
    assert code == 2 and len(output.strip().splitlines()) == 1 and "not a SQLite file" in output


def test_a_port_in_use_is_one_line_exit_2(store: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, output = run("--store", store, "--port", str(port))
    assert code == 2 and len(output.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in output and "in use" in output


def test_a_non_local_bind_needs_a_token(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTTRACKING_CONSOLE_TOKEN", raising=False)
    code, output = run("--store", store, "--host", "0.0.0.0", "--port", str(free_port()))
    assert code == 2 and len(output.strip().splitlines()) == 1 and "--token" in output
    code, output = run("--store", store, "--token", "short")
    assert code == 2 and "16 to 256" in output
    code, output = run("--store", store, "--replay-to", store)
    assert code == 2 and "--allow-replay" in output


def test_serve_serves_the_store_until_stopped(store: str) -> None:
    port = free_port()
    env = dict(os.environ, EVENTTRACKING_CONSOLE_TOKEN=TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-m", "eventtracking", "serve", "--store", store, "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert f"http://127.0.0.1:{port}/" in banner and "read-only" in banner
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/api/events", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert reply.status_code == 401  # the token from the environment is enforced
        reply = httpx.get(
            f"http://127.0.0.1:{port}/api/events", headers={"X-Console-Token": TOKEN}, timeout=5
        )
        assert [e["id"] for e in reply.json()["events"]] == ["e1"]
        process.send_signal(signal.SIGINT)  # Ctrl-C: a quiet stop, exit status 0
        assert process.wait(15) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_an_unreachable_postgresql_store_is_one_line_exit_2() -> None:
    url = "postgresql://nobody@127.0.0.1:1/none?table=events"
    code, output = run("--store", url, "--port", str(free_port()))
    assert code == 2 and len(output.strip().splitlines()) == 1
    assert "cannot connect" in output


def test_without_the_extra_it_says_what_to_install(store: str) -> None:
    script = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from eventtracking.cli import main\n"
        f"main(['serve', '--store', {store!r}, '--port', '{free_port()}'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: uvicorn is not installed; install it with: pip install 'event-tracking[console]'"
    ]
