"""URLs of the console for staff; include them under any prefix::

    path("tracking/console/", include("eventtracking.django.console_urls"))

Names (namespace ``eventtracking_console``): ``live``, ``charts``,
``catalogue``, ``delivery``, ``replay``, ``events``, ``stream``,
``charts-json``, ``metrics``, ``static``. See `eventtracking.django.console`.
"""

from __future__ import annotations

from django.urls import path

from . import console

app_name = "eventtracking_console"

urlpatterns = [
    path("", console.live, name="live"),
    path("charts", console.charts, name="charts"),
    path("catalogue", console.catalogue, name="catalogue"),
    path("delivery", console.delivery, name="delivery"),
    path("delivery/replay", console.replay, name="replay"),
    path("api/events", console.events, name="events"),
    path("api/stream", console.stream, name="stream"),
    path("api/charts", console.charts_json, name="charts-json"),
    path("metrics", console.metrics, name="metrics"),
    path("static/<str:name>", console.static, name="static"),
]
