"""Django system checks: bad eventtracking settings stop ``runserver``, ``migrate`` and ``check``.

Errors (the message starts with the setting path and says what to fix):

* ``eventtracking_django.E001``: a setting this app reads has a bad value;
* ``eventtracking_django.E002``: the tracker could not be built from
  ``EVENT_TRACKING_BACKENDS`` / ``EVENT_TRACKING_PROCESSORS`` /
  ``EVENT_TRACKING_CATALOGUE``, e.g.
  ``EVENT_TRACKING_BACKENDS.tracking_logs.OPTIONS.backends.local.ENGINE: cannot import ...``.

Warnings: ``W001`` tracking is enabled with no backends (every event is
discarded); ``W002`` the middleware is missing (events carry no request
context); ``W003`` the middleware comes before the session or authentication
middleware (it cannot see the user).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from ..exceptions import ImproperlyConfigured
from .conf import load_conf
from .django_tracker import build_error

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
    error = build_error()
    if error is not None:
        messages.append(
            Error(
                str(error),
                hint="Fix the setting path named at the start of the message; "
                "every component is {'ENGINE': 'dotted.path.Class', 'OPTIONS': {...}}.",
                id="eventtracking_django.E002",
            )
        )
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
    ours = [i for i, path in enumerate(middleware) if path in MIDDLEWARE_PATHS]
    if not ours:
        return [
            Warning(
                "eventtracking's middleware is not in MIDDLEWARE: events carry no request "
                "context (user_id, session, ip, ...).",
                hint=f"Add {MIDDLEWARE_PATHS[0]!r} after the authentication middleware.",
                id="eventtracking_django.W002",
            )
        ]
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
