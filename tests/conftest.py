"""Shared fixtures: a clean diagnostics state and a clean tracker registry per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from eventtracking import diagnostics, tracker

REQUIRE_SERVICES = os.environ.get("EVENTTRACKING_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    diagnostics.reset()
    saved = dict(tracker.TRACKERS)
    tracker.TRACKERS.clear()
    yield
    tracker.TRACKERS.clear()
    tracker.TRACKERS.update(saved)


@pytest.fixture(autouse=True)
def _journal_root(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Delivery backends keep a journal by default: each test gets a root of its
    # own, so no test adopts (and delivers) what another left behind.
    monkeypatch.setenv("EVENTTRACKING_JOURNAL_DIR", str(tmp_path_factory.mktemp("journal")))


def service_unavailable(name: str, reason: str) -> None:
    """Skip the test, or fail it when CI requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (EVENTTRACKING_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(f"{name} unavailable: {reason}")
