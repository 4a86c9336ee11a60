"""Shared set-up for the eventtracking.django tests: Django configured once, plus helpers.

Importing this module configures Django from `django_settings` (pytest-django
then provides its `db`, `client`, `settings` and `live_server` fixtures).
`SETUP_TRACKER` is the tracker the app installed at start-up, with the types
its autodiscovery registered (the suite's autouse fixture clears the tracker
registry before each test, so tests install their own with `install`).
"""

from __future__ import annotations

from typing import Any

import pytest

from services import require_driver

require_driver("django", "django")  # skip (fail in CI) the Django tests without the extra
require_driver("pytest_django", "test")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

import django_settings  # noqa: E402
from eventtracking.testing import InMemoryBackend  # noqa: E402
from eventtracking.tracker import Tracker, get_tracker  # noqa: E402

if not settings.configured:
    settings.configure(
        **{name: getattr(django_settings, name) for name in dir(django_settings) if name.isupper()}
    )
    django.setup()

SETUP_TRACKER: Tracker = get_tracker()

from eventtracking.django.django_tracker import DjangoTracker, install_tracker  # noqa: E402


def install(settings_fixture: Any, **overrides: Any) -> DjangoTracker:
    """Apply `overrides` to the settings (pytest-django `settings`), install a new DjangoTracker."""
    for name, value in overrides.items():
        setattr(settings_fixture, name, value)
    tracker = install_tracker()
    if tracker is None:
        pytest.fail("the DjangoTracker could not be built from the test settings")
    return tracker


def memory(tracker: Tracker, name: str = "memory") -> InMemoryBackend:
    """The InMemoryBackend configured as `name`."""
    backend = tracker.get_backend(name)
    assert isinstance(backend, InMemoryBackend)
    return backend
