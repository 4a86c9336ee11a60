"""Django system checks: bad eventtracking settings stop ``runserver``, ``migrate`` and ``check``.

Errors (the message starts with the setting path and says what to fix):

* ``eventtracking_django.E001``: a setting this app reads has a bad value.

A tracker that cannot be built from ``EVENT_TRACKING_BACKENDS`` /
``EVENT_TRACKING_PROCESSORS`` stops start-up itself (as in Open edX), with
the setting path in the message.

Warnings: ``W001`` tracking is enabled with no backends (every event is
discarded); ``W003`` our middleware comes before the session or
authentication middleware (it cannot see the user). A missing middleware is
not reported: Open edX enters the request context with its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from ..exceptions import ImproperlyConfigured
from .conf import load_conf

__all__ = ["check_settings"]

MIDDLEWARE_PATHS: Final = (
    "eventtracking.django.middleware.TrackMiddleware",
    "eventtracking.django.middleware.RequestContextMiddleware",
)
BEFORE_US: Final = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)


@register("eventtracking")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report bad settings, a tracker that could not be built, and middleware problems."""
    try:
        conf = load_conf()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Fix the setting named at the start of the message.",
                id="eventtracking_django.E001",
            )
        ]
    if not conf.enabled:
        return []
    messages: list[CheckMessage] = []
    if not getattr(settings, "EVENT_TRACKING_BACKENDS", None):
        messages.append(
            Warning(
                "EVENT_TRACKING_ENABLED is True but EVENT_TRACKING_BACKENDS is empty: "
                "every event is discarded.",
                hint="Add a backend, e.g. {'store': {'ENGINE': "
                "'eventtracking.backends.sqlite.SQLiteBackend'}}.",
                id="eventtracking_django.W001",
            )
        )
    messages.extend(_middleware_messages(list(getattr(settings, "MIDDLEWARE", None) or [])))
    return messages


def _middleware_messages(middleware: list[str]) -> list[CheckMessage]:
    # Without our middleware there is nothing to say: Open edX, for one, enters
    # the request context with a middleware of its own.
    ours = [i for i, path in enumerate(middleware) if path in MIDDLEWARE_PATHS]
    if not ours:
        return []
    return [
        Warning(
            f"{middleware[ours[0]]!r} comes before {path!r} in MIDDLEWARE, so it cannot see "
            "the session or the user.",
            hint=f"Move it after {path!r}.",
            id="eventtracking_django.W003",
        )
        for path in BEFORE_US
        if path in middleware and middleware.index(path) > ours[0]
    ]
