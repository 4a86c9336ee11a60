"""Every command that needs an optional extra says which one in one line, never a traceback.

Each case runs the real `eventtracking` entry point in a subprocess whose
import system refuses the driver module, as on an install without the extra.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventtracking.cli import cli

# Runs `eventtracking ARGS...` with the modules named in BLOCKED impossible to import.
RUNNER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.meta_path.insert(0, Blocker())
    from eventtracking.cli import main
    main(sys.argv[2:])
    """
)


def run_without(modules: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, modules, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "events.db")
    result = CliRunner().invoke(cli, ["demo", "--store", path, "--events", "20", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return path


HTTP_TO = (
    '{"ENGINE": "eventtracking.backends.http.HTTPBackend", '
    '"OPTIONS": {"url": "http://127.0.0.1:9/"}}'
)
REDIS_TO = (
    '{"ENGINE": "eventtracking.backends.redis_stream.RedisStreamBackend", '
    '"OPTIONS": {"url": "redis://127.0.0.1:6379/0", "stream": "x"}}'
)


@pytest.mark.parametrize(
    ("blocked", "extra", "args"),
    [
        ("redis", "redis", ["consume", "redis://127.0.0.1:6379/0", "--stream", "s", "--group", "g",
                            "--to", "out.db"]),
        ("psycopg", "postgres", ["consume", "redis://127.0.0.1:6379/0", "--stream", "s",
                                 "--group", "g", "--to", "postgresql://127.0.0.1/test"]),
        ("psycopg", "postgres", ["query", "--store", "postgresql://127.0.0.1/test"]),
        ("psycopg", "postgres", ["stats", "--store", "postgresql://127.0.0.1/test"]),
        ("psycopg", "postgres", ["tail", "--store", "postgresql://127.0.0.1/test"]),
        ("psycopg", "postgres", ["catalog", "--store", "postgresql://127.0.0.1/test"]),
        ("psycopg", "postgres", ["replay", "--from", "{store}", "--to", "postgresql://127.0.0.1/test"]),
        ("httpx", "http", ["replay", "--from", "{store}", "--to", HTTP_TO]),
        ("redis", "redis", ["replay", "--from", "{store}", "--to", REDIS_TO]),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(
    blocked: str, extra: str, args: list[str], store: str, tmp_path: Path
) -> None:
    result = run_without(blocked, *[arg.replace("{store}", store) for arg in args], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"install it with: pip install 'event-tracking[{extra}]'" in lines[0]


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    """Without a block the same consume gets past the import (and fails on its sink instead)."""
    result = run_without(
        "nothing",
        "consume", "redis://127.0.0.1:1/0", "--stream", "s", "--group", "g",
        "--to", str(tmp_path / "no" / "such" / "dir" / "x.db"), cwd=tmp_path,
    )  # fmt: skip
    assert "install it with" not in result.stderr
