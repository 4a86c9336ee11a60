"""Transaction-aware emit: send an event only if the database transaction commits.

Per call::

    from eventtracking.django.transaction import emit_on_commit
    with transaction.atomic():
        enrollment.save()
        emit_on_commit('edx.course.enrollment.activated', {'course_id': key})

Per event type: list names or globs in the setting ``EVENT_TRACKING_ON_COMMIT``
(``['edx.course.enrollment.*']``) and every ``tracker.emit`` of a matching
name on the `DjangoTracker` waits for the commit.

Inside ``transaction.atomic()`` (or a request under ``ATOMIC_REQUESTS``) the
event is sent when the outermost transaction commits and never if it rolls
back; outside a transaction it is sent at once (Django's ``on_commit`` rule).
The event keeps the task-scope contexts (the request context) in effect at
the call, not those at commit time; its timestamp is the commit time. Under
the strict validation policy a `ValidationError` is raised at commit, out of
the ``atomic`` block.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction

from ..track import get_tracker
from ..tracker import Tracker

__all__ = ["emit_on_commit"]


def emit_on_commit(
    name: str,
    data: Mapping[str, Any] | None = None,
    *,
    tracker: Tracker | None = None,
    using: str | None = None,
) -> None:
    """Emit `name` with `data` on `tracker` (default: the default tracker) once the current
    transaction of database `using` (default: ``'default'``) commits; see module docs."""
    defer_emit(tracker if tracker is not None else get_tracker(), name, data, using)


def defer_emit(
    tracker: Tracker, name: str | None, data: Mapping[str, Any] | None, using: str | None
) -> None:
    """Register the emit with ``transaction.on_commit`` (at once when no database is set up)."""
    # The caller may change its dict after this call; the event must not see that.
    frozen = dict(data) if isinstance(data, Mapping) else data
    send = getattr(tracker, "emit_now", tracker.emit)
    if not settings.DATABASES:
        send(name, frozen)
        return
    context = contextvars.copy_context()
    transaction.on_commit(lambda: context.run(send, name, frozen), using=using)
