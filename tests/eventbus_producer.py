"""The emitting process of the event-bus test (``python -m eventbus_producer``; not for pytest).

With ``DJANGO_SETTINGS_MODULE=eventbus_settings``: starts Django (the
eventtracking app installs the DjangoTracker; openedx-events connects
``TRACKING_EVENT_EMITTED`` to the Redis producer), emits two events through
`eventtracking.tracker.emit` inside a request-like context, and exits. Only
the first is listed in ``EVENT_BUS_TRACKING_LOGS``; the producer writes it
onto the Redis stream before `emit` returns.
"""

from __future__ import annotations

import django


def main() -> None:
    django.setup()
    from django.conf import settings

    from eventtracking import tracker

    default = tracker.get_tracker()
    with default.context("e2e.request", {"user_id": 7, "course_id": "course-v1:Org+E2E+Run"}):
        tracker.emit(
            settings.EVENT_NAME,
            {"answer": 42, "text": "héllo wörld", "nested": {"list": [1, 2.5, None, True]}},
        )
        tracker.emit("edx.e2e.bus.not_listed", {"answer": 0})  # must not cross the bus
    default.flush(5.0)


if __name__ == "__main__":
    main()
