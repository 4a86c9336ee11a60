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


def service_unavailable(name: str, reason: str) -> None:
    """Skip the test, or fail it when CI requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (EVENTTRACKING_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(f"{name} unavailable: {reason}")
