"""URLs of the browser endpoint; include them under any prefix::

    path('tracking/', include('eventtracking.django.urls'))

gives ``tracking/events`` (name ``eventtracking:events``, the JSON endpoint
``static/eventtracking/tracker.js`` posts to) and ``tracking/event`` (name
``eventtracking:legacy``, Open edX's ``/event`` form). To keep Open edX's exact
path, add ``path('event', eventtracking.django.views.legacy_event)`` at the root.
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "eventtracking"

urlpatterns = [
    path("events", views.browser_events, name="events"),
    path("event", views.legacy_event, name="legacy"),
]
