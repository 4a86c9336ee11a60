"""pyproject.toml: PEP 735 dependency groups for the tools, project URLs and classifiers."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", item, maxsplit=1)[0].lower() for item in requirements}


def test_the_dependency_groups_hold_the_test_extras_tools() -> None:
    groups = PROJECT["dependency-groups"]
    extra = names(PROJECT["project"]["optional-dependencies"]["test"])
    tools = extra - {"event-tracking"}  # the extra also pulls our own drivers
    grouped = names(groups["test"]) | names(groups["lint"])
    assert tools <= grouped, tools - grouped
    assert {"include-group": "test"} in groups["dev"] and {"include-group": "lint"} in groups["dev"]


def test_urls_and_classifiers() -> None:
    project = PROJECT["project"]
    assert project["urls"] and all(url.startswith("https://") for url in project["urls"].values())
    classifiers = set(project["classifiers"])
    assert {"Framework :: Django", "Typing :: Typed", "Programming Language :: Python :: 3.11"} <= (
        classifiers
    )
    assert any(c.startswith("Development Status ::") for c in classifiers)


def test_pip_reads_the_groups() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60
    )
    found = re.match(r"pip (\d+)\.(\d+)", version.stdout)
    if version.returncode != 0 or not found or (int(found[1]), int(found[2])) < (25, 1):
        pytest.skip("pip 25.1+ reads dependency groups")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
         "--group", "dev"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pytest" in result.stdout
