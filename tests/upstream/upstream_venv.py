"""build/upstream-venv: a virtualenv with the original event-tracking 4.0.2 from the registry.

Built once (python -m venv, then pip install event-tracking==4.0.2 with its
dependencies: Django, Celery, pymongo, openedx-events, edx-toggles, ...; and
pytest with pytest-django, to run tests of ours against the original) and
reused while its stamp file is there. A lock keeps two test processes from
building it at the same time. `python tests/upstream/upstream_venv.py` builds
it and prints its interpreter.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

ORIGINAL = "event-tracking==4.0.2"
REQUIREMENTS = [ORIGINAL, "pytest", "pytest-django", "pytest-timeout"]
VERSION = "4.0.2"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "build" / "upstream-venv"
PYTHON = VENV / "bin" / "python"
# Written last: its packages, as pip freeze lists them. Renamed when REQUIREMENTS change,
# so an older cached virtualenv is rebuilt.
STAMP = VENV / ".complete-2"
BUILD_TIMEOUT = 600  # seconds for venv + pip install


class UpstreamVenvError(RuntimeError):
    """The virtualenv of the original could not be built (no network, no registry, ...)."""


def _run(command: list[str], what: str) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise UpstreamVenvError(f"{what} took more than {BUILD_TIMEOUT} s") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise UpstreamVenvError(f"{what} failed ({result.returncode}): " + " | ".join(tail))
    return result.stdout


def ensure() -> Path:
    """The interpreter of the original's virtualenv, built first when missing."""
    if STAMP.exists() and PYTHON.exists():
        return PYTHON
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "upstream-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if STAMP.exists() and PYTHON.exists():  # built by another process meanwhile
            return PYTHON
        shutil.rmtree(VENV, ignore_errors=True)  # a half-built one from an interrupted run
        _run([sys.executable, "-m", "venv", str(VENV)], "python -m venv")
        _run(
            [
                str(PYTHON),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *REQUIREMENTS,
            ],
            f"pip install {' '.join(REQUIREMENTS)}",
        )
        found = _run(
            [
                str(PYTHON),
                "-c",
                "import importlib.metadata as m; print(m.version('event-tracking'))",
            ],
            "reading the installed version",
        ).strip()
        if found != VERSION:
            raise UpstreamVenvError(f"expected event-tracking {VERSION}, found {found}")
        STAMP.write_text(_run([str(PYTHON), "-m", "pip", "freeze"], "pip freeze"))
    return PYTHON


if __name__ == "__main__":
    print(ensure())
