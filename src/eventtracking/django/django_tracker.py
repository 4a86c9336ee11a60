"""`DjangoTracker`: a Tracker built from Django settings (the Open edX class of that name).

Settings read (all optional):

* ``EVENT_TRACKING_BACKENDS``: name -> ``{'ENGINE': dotted.path, 'OPTIONS': {...}}``,
  built recursively by `eventtracking.config` (components at any depth of
  ``OPTIONS`` are built, so routing backends nest);
* ``EVENT_TRACKING_PROCESSORS``: a list of such components;
* ``EVENT_TRACKING_VALIDATION`` (``warn``/``strict``/``off``),
  ``EVENT_TRACKING_CATALOGUE`` (TOML catalogue files, relative to ``BASE_DIR``),
  ``EVENT_TRACKING_ENVELOPE`` (``openedx``, the default, or ``full`` for
  event ids), ``EVENT_TRACKING_MAX_EVENT_SIZE``;
* ``EVENT_TRACKING_ON_COMMIT``: event names or globs emitted only on commit.

A configuration error is an `ImproperlyConfigured` (a ValueError, as Open
edX raises) whose message starts with the setting path, e.g.
``EVENT_TRACKING_BACKENDS.tracking_logs.OPTIONS.backends.local.ENGINE: cannot import ...``;
raised at start-up, it stops the application, as in Open edX.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from django.conf import settings

from ..config import build_backends, build_processors, instantiate
from ..exceptions import ImproperlyConfigured
from ..registry import Registry, load_catalogue
from ..registry.model import Policy
from ..tracker import Tracker, register_tracker
from .conf import get_conf
from .transaction import defer_emit

__all__ = [
    "DJANGO_BACKEND_SETTING_NAME",
    "DJANGO_ENABLED_SETTING_NAME",
    "DJANGO_PROCESSOR_SETTING_NAME",
    "DjangoTracker",
    "install_tracker",
    "override_default_tracker",
    "validation_policy",
]

DJANGO_BACKEND_SETTING_NAME: Final = "EVENT_TRACKING_BACKENDS"
DJANGO_PROCESSOR_SETTING_NAME: Final = "EVENT_TRACKING_PROCESSORS"
DJANGO_ENABLED_SETTING_NAME: Final = "EVENT_TRACKING_ENABLED"


class DjangoTracker(Tracker):
    """A tracker whose backends, processors and registry come from Django settings.

    `backends_settings_name` and `processors_settings_name` name the settings
    to read, as in Open edX. Contexts live in contextvars, so request
    contexts stay apart between threads and asyncio tasks.
    `emit_on_commit` (and ``EVENT_TRACKING_ON_COMMIT``) defer events to the
    commit of the current database transaction.
    """

    def __init__(
        self,
        backends_settings_name: str = DJANGO_BACKEND_SETTING_NAME,
        processors_settings_name: str = DJANGO_PROCESSOR_SETTING_NAME,
    ) -> None:
        conf = get_conf()
        registry = Registry()
        for i, path in enumerate(conf.catalogue):
            try:
                load_catalogue(path, registry)
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured(f"EVENT_TRACKING_CATALOGUE[{i}]: {exc}") from exc
        super().__init__(
            self.create_backends_from_settings(backends_settings_name),
            processors=self.create_processors_from_settings(processors_settings_name),
            envelope=conf.envelope,
            registry=registry,
            validation=conf.validation,
            max_event_size=conf.max_event_size,
        )
        self._on_commit = conf.on_commit.fullmatch if conf.on_commit is not None else None

    def create_backends_from_settings(
        self, settings_name: str = DJANGO_BACKEND_SETTING_NAME
    ) -> dict[str, Any]:
        """Build the setting `settings_name` (name -> backend component)."""
        specs = getattr(settings, settings_name, None) or {}
        return build_backends(specs, settings_name)

    def create_processors_from_settings(
        self, settings_name: str = DJANGO_PROCESSOR_SETTING_NAME
    ) -> list[Any]:
        """Build the setting `settings_name` (a list of processor components)."""
        specs = getattr(settings, settings_name, None) or []
        return build_processors(specs, settings_name)

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


def install_tracker() -> DjangoTracker:
    """Build a DjangoTracker and make it the default tracker.

    A configuration error propagates (`ImproperlyConfigured`, a ValueError):
    at start-up it stops the application, as Open edX's does.
    """
    tracker = DjangoTracker()
    register_tracker(tracker)
    return tracker


def override_default_tracker() -> None:
    """Install the DjangoTracker when ``EVENT_TRACKING_ENABLED`` is true (Open edX name).

    Returns None, as Open edX's does; `install_tracker` returns the tracker.
    """
    if get_conf().enabled:
        install_tracker()


def validation_policy(tracker: Tracker) -> Policy:
    """The tracker-wide validation policy (``warn`` for trackers that do not say)."""
    return tracker.validation
