"""The first hour: every command `make demo` and the README print runs exactly as printed.

A fresh clone is imitated by a directory holding only ``.venv`` (a link to the
virtualenv running these tests) and, for the example project, a copy of
``example/``. PATH holds only the system directories, as in a new shell where
nothing was activated. The demo is started with the Makefile's own recipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
SHELL_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": os.environ.get("HOME", "/tmp"),
    "LANG": "C.UTF-8",
    "COLUMNS": "200",
}

pytestmark = pytest.mark.skipif(
    not (VENV / "bin" / "eventtracking").is_file(),
    reason="the tests do not run from a virtualenv with the eventtracking script",
)


def demo_recipe() -> str:
    """The shell command `make demo` runs, with the Makefile's variables filled in."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.+)$", makefile, re.M)
    assert recipe, "the Makefile has no demo recipe"
    values = {"BIN": ".venv/bin", "VENV": ".venv", "STORE": "events.db"}
    return re.sub(r"\$\((\w+)\)", lambda m: values[m[1]], recipe[1])


def run(command: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=SHELL_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ctrl_c_stops_it() -> None:
    """In the child, before exec: SIGINT to its default, as in a terminal.

    A shell that starts a job in the background without job control (CI
    runners, ``sh -c "... &"``) ignores SIGINT for it, make keeps it ignored,
    and a Python started with SIGINT ignored never raises KeyboardInterrupt:
    this test's Ctrl-C would then do nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_until_output(command: str, cwd: Path) -> tuple[int, str]:
    """Start a command that runs until Ctrl-C; wait for its first line, then press Ctrl-C."""
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        env=SHELL_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_stops_it,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    try:
        rest, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert not errors.strip(), errors
    return process.returncode, first + rest


def check(command: str, cwd: Path) -> str:
    """Run `command` as printed; it must succeed without complaint. Returns its output."""
    if " -f" in command.split("#")[0]:
        code, output = run_until_output(command.split("#")[0].strip(), cwd)
        assert code == 0, output
        return output
    result = run(command, cwd)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert "command not found" not in result.stderr
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh directory after `make demo`: (its path, what the demo printed)."""
    where = tmp_path_factory.mktemp("clone")
    (where / ".venv").symlink_to(VENV)
    result = run(demo_recipe() + " --events 400 --seed 7", where)
    assert result.returncode == 0, result.stderr
    assert (where / "events.db").is_file()
    return where, result.stdout


def printed_commands(output: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index("Next, try:")
    return [line.strip() for line in lines[start + 1 :] if line.startswith("  ")]


def test_the_demo_prints_commands_with_their_path(clone: tuple[Path, str]) -> None:
    commands = printed_commands(clone[1])
    assert len(commands) >= 5
    assert all(command.startswith(".venv/bin/eventtracking ") for command in commands)
    # Without the path a fresh shell cannot find the command: the reason to print it.
    if shutil.which("eventtracking", path=SHELL_ENV["PATH"]) is None:
        bare = run(commands[0].removeprefix(".venv/bin/"), clone[0])
        assert bare.returncode == 127


def test_every_command_the_demo_prints_runs_as_printed(clone: tuple[Path, str]) -> None:
    where, output = clone
    for command in printed_commands(output):
        shown = check(command, where)
        if " query " in f" {command} ":
            assert "No events match" not in shown, command
    catalogue = run(".venv/bin/eventtracking catalog --store events.db", where).stdout
    assert "Not documented" not in catalogue
    assert "The learner paused a video." in catalogue


def readme_blocks() -> str:
    return (ROOT / "README.md").read_text()


def readme_commands(prefix: str) -> list[str]:
    """Indented README lines that start with `prefix` (shell examples)."""
    found = []
    for line in readme_blocks().splitlines():
        stripped = line.strip()
        if line.startswith("    ") and stripped.startswith(prefix):
            found.append(stripped)
    return found


def test_every_readme_command_runs_as_printed_after_make_demo(clone: tuple[Path, str]) -> None:
    where, _ = clone
    # The Quick start's "To store events instead" snippet writes ./events.db too.
    snippet = re.search(r"To store events instead:\n\n```python\n(.*?)```", readme_blocks(), re.S)
    assert snippet, "the README's Quick start snippet moved"
    (where / "quickstart.py").write_text(snippet[1])
    check(".venv/bin/python quickstart.py", where)
    commands = readme_commands(".venv/bin/eventtracking ")
    assert len(commands) >= 5, "the README shows the first-hour commands with their path"
    for command in commands:
        shown = check(command, where)
        if " query " in f" {command} ":
            assert "No events match" not in shown and shown.strip(), command


def free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


USER_VISIT = """
from django.test import Client
client = Client(raise_request_exception=False)
client.get("/")
token = client.cookies["csrftoken"].value
client.post("/login", HTTP_X_CSRFTOKEN=token)
page = client.get("/").content.decode()
import json
client.post("/tracking/events", json.dumps({"events": [
    {"name": "client.page.viewed", "data": {"title": "shop"}},
    {"name": "client.video.played", "data": {"video_id": "intro", "position": 12.5}}]}),
    content_type="application/json", HTTP_X_CSRFTOKEN=token)
client.post("/order", {"item": "pen", "csrfmiddlewaretoken": token})
from eventtracking import get_tracker
get_tracker().flush(5.0)
print("LOGGED-IN" if "Logged in as <b>demo</b>" in page else "ANONYMOUS")
"""


def test_the_example_set_up_runs_as_printed_and_leaves_no_untracked_files(
    tmp_path: Path,
) -> None:
    pytest.importorskip("django")
    (tmp_path / ".venv").symlink_to(VENV)
    shutil.copytree(ROOT / "example", tmp_path / "example", ignore=shutil.ignore_patterns("var"))
    example = tmp_path / "example"
    commands = readme_commands("../.venv/bin/python manage.py ")
    assert any(c.endswith(" migrate") for c in commands), commands
    # `cd example` is part of the printed set-up; the pip line installs what the venv has.
    assert "    cd example" in readme_blocks()
    visited = False
    for command in commands:
        if " runserver" in command:
            if free(8000):
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {command.split('#')[0]} --noreload"],
                    cwd=example,
                    env=SHELL_ENV,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=ctrl_c_stops_it,
                )
                try:
                    assert_serves("http://127.0.0.1:8000/")
                finally:
                    server.send_signal(signal.SIGINT)
                    server.wait(timeout=30)
            # The person at the browser: log in, play, buy (what the README asks).
            visit = run(f"../.venv/bin/python manage.py shell -c '{USER_VISIT}'", example)
            assert visit.returncode == 0, visit.stderr
            assert visit.stdout.strip().endswith("LOGGED-IN")  # the auth context processor
            visited = True
            continue
        output = check(command, example)
        if "eventtracking_query" in command:
            events = [line for line in output.splitlines() if "client." in line]
            assert events, output
    assert visited
    # Everything the project wrote is in example/var/, which git ignores.
    written = {p.name for p in example.iterdir()} - {p.name for p in (ROOT / "example").iterdir()}
    assert written <= {"var"}, written
    assert {"db.sqlite3", "events.db", "tracking.log"} <= {
        p.name for p in (example / "var").iterdir()
    }
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "example/var/events.db"], cwd=ROOT, timeout=30
    )
    assert ignored.returncode == 0, "example/var/ must be ignored by git"


def assert_serves(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                assert b"eventtracking example shop" in response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_catalog_check_passes_on_the_example_after_a_visit(tmp_path: Path) -> None:
    pytest.importorskip("django")
    env = {**os.environ, "EXAMPLE_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "example")}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT / "example",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "-v", "0").returncode == 0
    assert manage("shell", "-c", USER_VISIT).returncode == 0
    checked = manage("eventtracking_catalog", "--check", "--format", "json-schema")
    assert checked.returncode == 0, checked.stderr
    documented = json.loads(checked.stdout)
    assert "server.request" in json.dumps(documented)
