"""The Django app ``eventtracking.django`` (label ``eventtracking_django``).

At start-up (`EventTrackingConfig.ready`) it registers the system checks,
installs a `DjangoTracker` as the default tracker when
``EVENT_TRACKING_ENABLED`` is true (a configuration error stops start-up, as
in Open edX), and connects `eventtracking.handlers` to Open edX's event bus
when the ``openedx`` extra is installed. With ``EVENT_TRACKING_AUTODISCOVER =
True`` (off by default: Open edX apps already have modules named
``events``) it then imports the ``events`` module of every installed app, so
the event types they register land on that tracker; an error raised inside
an ``events.py`` propagates, like Django's admin autodiscovery.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

from .conf import get_conf
from .django_tracker import install_tracker

__all__ = ["EventTrackingConfig", "autodiscover"]


class EventTrackingConfig(AppConfig):
    """Install the tracker and find each app's ``events.py`` (see module docs)."""

    name = "eventtracking.django"
    label = "eventtracking_django"
    verbose_name = "Event tracking"

    def ready(self) -> None:
        import logging

        from ..exceptions import MissingExtraError
        from . import checks  # noqa: F401  (registers the system checks)

        try:
            # Tracking logs arriving over Open edX's event bus reach the
            # EventBusRoutingBackends through this module's signal receiver.
            from .. import handlers  # noqa: F401
        except MissingExtraError as exc:  # no openedx extra: the event bus is not used
            logging.getLogger(__name__).debug("event bus handlers not connected: %s", exc)

        conf = get_conf()  # a bad setting stops start-up, naming the setting
        if conf.enabled:
            install_tracker()  # so does a tracker that cannot be built, as in Open edX
        if conf.autodiscover:
            autodiscover()


def autodiscover() -> None:
    """Import ``<app>.events`` for every installed app that has one."""
    autodiscover_modules("events")
