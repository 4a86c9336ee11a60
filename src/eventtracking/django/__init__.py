"""Django integration: settings-built tracker, request context, browser events.

Add ``'eventtracking.django'`` to ``INSTALLED_APPS`` and
``'eventtracking.django.middleware.TrackMiddleware'`` to ``MIDDLEWARE`` (after
the authentication middleware), set ``EVENT_TRACKING_ENABLED = True`` and
``EVENT_TRACKING_BACKENDS``, and include ``eventtracking.django.urls`` for the
browser endpoint. See the README's "Django" section.

Modules: `apps` (start-up), `django_tracker` (`DjangoTracker`), `conf`
(settings), `middleware`, `context` (request context), `transaction`
(`emit_on_commit`), `views`/`urls`/`payload`/`ratelimit` (browser endpoint),
`checks` (system checks). This package needs the ``django`` extra; the rest of
eventtracking never imports it.
"""

from __future__ import annotations

from .django_tracker import DjangoTracker

__all__ = ["DjangoTracker"]
