"""Run the original event-tracking 4.0.2's own tests against our installed `eventtracking`.

The original's wheel ships its test modules; they define the drop-in surface.
Its licence keeps them out of this repository, so this script fetches them at
test time instead:

1. `pip download --no-deps event-tracking==4.0.2` into build/upstream/dist
   (a wheel already there is reused);
2. every file under `eventtracking/**/tests/` is extracted to
   build/upstream/tests/upstream_eventtracking/, and the only change made to
   it is the import path of the original's own test helpers
   (`eventtracking.backends.tests` -> `upstream_eventtracking.backends.tests`,
   also inside ENGINE strings); everything else still imports `eventtracking`,
   which is ours;
3. pytest runs them with pytest-django and the original's own settings module
   (`upstream_eventtracking.django.tests.settings`), under a neutral pytest.ini
   so this repository's pytest options do not change the original's tests.

Usage: python tests/upstream/run_upstream.py [extra pytest arguments]
Exits with pytest's exit code (non-zero when any test fails), after pytest's
own summary line.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

ORIGINAL = "event-tracking==4.0.2"
WHEEL_GLOB = "event_tracking-4.0.2-*.whl"
PACKAGE = "upstream_eventtracking"  # what the original's `eventtracking.**.tests` becomes

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "upstream"
DIST = BUILD / "dist"
TREE = BUILD / "tests"  # pytest's rootdir: pytest.ini + the package below
SETTINGS_MODULE = f"{PACKAGE}.django.tests.settings"

# Test files not run, by pattern (matched against the file name), with the reason printed.
EXCLUDED = {
    "test_mongodb*.py": "needs a running MongoDB server, and none can run here",
}

# Deliberate differences from the original: at most two, each a pytest node id
# relative to the package (e.g. "backends/tests/test_logger.py::TestLoggerBackend::test_x")
# mapped to the reason it is allowed. Deselected, and the reason printed.
ALLOWED_DIFFERENCES: dict[str, str] = {}
MAX_ALLOWED_DIFFERENCES = 2

PER_TEST_TIMEOUT = 30  # seconds; a hung test fails instead of stalling the run
RUN_TIMEOUT = 600  # seconds for the whole pytest run

# `eventtracking.tests`, `eventtracking.backends.tests`, `eventtracking.django.tests.x.Y`, ...
HELPER_PATH = re.compile(r"\beventtracking((?:\.[A-Za-z_]\w*)*?)\.tests\b")

PYTEST_INI = """\
# Written by tests/upstream/run_upstream.py: the original's tests run under
# their own neutral options, not this repository's pyproject.toml.
[pytest]
addopts = -ra -p no:cacheprovider
python_files = test_*.py
pythonpath = .
"""


def say(message: str) -> None:
    print(f"[upstream] {message}", flush=True)


def wheel() -> Path:
    """The original's wheel: the cached download, or a new one from the package registry."""
    found = sorted(DIST.glob(WHEEL_GLOB))
    if found:
        say(f"using cached {found[-1].relative_to(ROOT)}")
        return found[-1]
    DIST.mkdir(parents=True, exist_ok=True)
    say(f"downloading {ORIGINAL} from the package registry")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        ORIGINAL,
        "-d",
        str(DIST),
    ]
    result = subprocess.run(command, timeout=300, check=False)
    found = sorted(DIST.glob(WHEEL_GLOB))
    if result.returncode != 0 or not found:
        sys.exit(f"[upstream] could not download {ORIGINAL} (pip exit code {result.returncode})")
    return found[-1]


def excluded_reason(name: str) -> str | None:
    for pattern, reason in EXCLUDED.items():
        if fnmatch.fnmatch(name, pattern):
            return reason
    return None


def rewrite(text: str) -> tuple[str, int]:
    """Point the original's imports of its own test helpers at the extracted package."""
    return HELPER_PATH.subn(lambda m: f"{PACKAGE}{m.group(1)}.tests", text)


def extract(wheel_path: Path) -> list[str]:
    """Extract the original's test modules into TREE; returns the extracted file paths."""
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / PACKAGE
    package.mkdir(parents=True)
    extracted: list[str] = []
    rewritten = 0
    with zipfile.ZipFile(wheel_path) as archive:
        for member in archive.namelist():
            path = PurePosixPath(member)
            if path.parts[0] != "eventtracking" or "tests" not in path.parts[1:-1]:
                continue
            relative = PurePosixPath(*path.parts[1:])
            reason = excluded_reason(path.name)
            if reason is not None:
                say(f"excluded {relative}: {reason}")
                continue
            target = package.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            data = archive.read(member)
            if path.suffix == ".py":
                text, count = rewrite(data.decode("utf-8"))
                rewritten += count
                data = text.encode("utf-8")
            target.write_bytes(data)
            extracted.append(str(relative))
    # Packages between the root and each tests/ folder (the original's are
    # source modules of its own, which we do not extract).
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text('"""Created by tests/upstream/run_upstream.py."""\n')
    (TREE / "pytest.ini").write_text(PYTEST_INI)
    say(
        f"extracted {len(extracted)} files to {package.relative_to(ROOT)}; "
        f"{rewritten} import paths of the original's test helpers rewritten to {PACKAGE}"
    )
    return extracted


def main(extra: list[str]) -> int:
    if len(ALLOWED_DIFFERENCES) > MAX_ALLOWED_DIFFERENCES:
        sys.exit(f"[upstream] at most {MAX_ALLOWED_DIFFERENCES} allowed differences")
    extract(wheel())
    import eventtracking  # ours: the package the original's tests will run against

    say(f"testing {Path(eventtracking.__file__).parent} against the original's tests")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(TREE / "pytest.ini"),
        "--rootdir",
        str(TREE),
        f"--ds={SETTINGS_MODULE}",
        "--timeout",
        str(PER_TEST_TIMEOUT),
        "--tb=short",
        "-q",
        # A module that cannot be imported (a missing module of ours) is one
        # error; the other modules still run and are reported.
        "--continue-on-collection-errors",
    ]
    for node, reason in ALLOWED_DIFFERENCES.items():
        say(f"deselected (allowed difference) {node}: {reason}")
        command += ["--deselect", f"{PACKAGE}/{node}"]
    command += [*extra, PACKAGE]
    try:
        result = subprocess.run(command, cwd=TREE, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        say(f"the original's tests did not finish within {RUN_TIMEOUT} s")
        return 1
    if result.returncode == 5:  # pytest: no tests collected, which is a failure here
        say("no tests were collected")
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
