"""`DjangoTracker`: a Tracker built from Django settings (the Open edX class of that name).

Settings read (all optional):

* ``EVENT_TRACKING_BACKENDS``: name -> ``{'ENGINE': dotted.path, 'OPTIONS': {...}}``,
  built recursively by `eventtracking.config` (routing backends nest);
* ``EVENT_TRACKING_PROCESSORS``: a list of such components;
* ``EVENT_TRACKING_VALIDATION`` (``warn``/``strict``/``off``),
  ``EVENT_TRACKING_CATALOGUE`` (TOML catalogue files, relative to ``BASE_DIR``),
  ``EVENT_TRACKING_ENVELOPE``, ``EVENT_TRACKING_MAX_EVENT_SIZE``;
* ``EVENT_TRACKING_ON_COMMIT``: event names or globs emitted only on commit.

Errors are `ImproperlyConfigured` starting with the setting path, e.g.
``EVENT_TRACKING_BACKENDS.tracking_logs.OPTIONS.backends.local.ENGINE: cannot import ...``.
The app installs a DjangoTracker as the default tracker at start-up when
``EVENT_TRACKING_ENABLED`` is true (see `install_tracker`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from ..config import build_backends, build_processors, instantiate
from ..exceptions import ImproperlyConfigured
from ..registry import Registry, load_catalogue
from ..registry.model import Policy
from ..tracker import Tracker, register_tracker
from .conf import get_conf
from .transaction import defer_emit

__all__ = [
    "DjangoTracker",
    "build_error",
    "install_tracker",
    "override_default_tracker",
    "validation_policy",
]

logger = logging.getLogger(__name__)
_build_error: ImproperlyConfigured | None = None


class DjangoTracker(Tracker):
    """A tracker whose backends, processors and registry come from Django settings.

    Built with no arguments, like Open edX's. Contexts live in contextvars, so
    request contexts stay apart between threads and asyncio tasks.
    `emit_on_commit` (and ``EVENT_TRACKING_ON_COMMIT``) defer events to the
    commit of the current database transaction.
    """

    def __init__(self) -> None:
        conf = get_conf()
        registry = Registry()
        for i, path in enumerate(conf.catalogue):
            try:
                load_catalogue(path, registry)
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured(f"EVENT_TRACKING_CATALOGUE[{i}]: {exc}") from exc
        super().__init__(
            self.create_backends_from_settings(),
            processors=self.create_processors_from_settings(),
            envelope=conf.envelope,
            registry=registry,
            validation=conf.validation,
            max_event_size=conf.max_event_size,
        )
        self._on_commit = conf.on_commit.fullmatch if conf.on_commit is not None else None

    def create_backends_from_settings(self) -> dict[str, Any]:
        """Build ``EVENT_TRACKING_BACKENDS`` (name -> backend)."""
        specs = getattr(settings, "EVENT_TRACKING_BACKENDS", None) or {}
        return build_backends(specs, "EVENT_TRACKING_BACKENDS")

    def create_processors_from_settings(self) -> list[Any]:
        """Build ``EVENT_TRACKING_PROCESSORS`` (a list of processors)."""
        specs = getattr(settings, "EVENT_TRACKING_PROCESSORS", None) or []
        return build_processors(specs, "EVENT_TRACKING_PROCESSORS")

    def instantiate_from_dict(self, values: Mapping[str, Any]) -> Any:
        """Build one ``{'ENGINE': ..., 'OPTIONS': ...}`` component (Open edX helper)."""
        return instantiate(values, "component")

    def emit(self, name: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        """Emit now, or on commit when `name` matches ``EVENT_TRACKING_ON_COMMIT``."""
        match = self._on_commit
        if match is not None and type(name) is str and match(name) is not None:
            defer_emit(self, name, data, None)
            return
        super().emit(name, data)

    def emit_now(self, name: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        """Emit at once, whatever ``EVENT_TRACKING_ON_COMMIT`` says."""
        super().emit(name, data)

    def emit_on_commit(
        self, name: str, data: Mapping[str, Any] | None = None, using: str | None = None
    ) -> None:
        """Emit when the current transaction of database `using` commits (see `transaction`)."""
        defer_emit(self, name, data, using)


def install_tracker() -> DjangoTracker | None:
    """Build a DjangoTracker and make it the default tracker; None if the settings are bad.

    A configuration error is logged and kept for the system checks
    (`build_error`), which then stop ``runserver``/``migrate``; the request
    middleware refuses to start with it, so a WSGI server fails at start-up too.
    """
    global _build_error
    try:
        tracker = DjangoTracker()
    except ImproperlyConfigured as exc:
        _build_error = exc
        logger.error("eventtracking: the tracker cannot be built: %s", exc)
        return None
    _build_error = None
    register_tracker(tracker)
    return tracker


def override_default_tracker() -> DjangoTracker | None:
    """Install the DjangoTracker when ``EVENT_TRACKING_ENABLED`` is true (Open edX name)."""
    return install_tracker() if get_conf().enabled else None


def build_error() -> ImproperlyConfigured | None:
    """Why the last `install_tracker` failed, or None."""
    return _build_error


def validation_policy(tracker: Tracker) -> Policy:
    """The tracker-wide validation policy (``warn`` for trackers that do not say)."""
    return tracker.validation
