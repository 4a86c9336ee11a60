"""URLs: the shop's pages and the browser endpoint."""

from __future__ import annotations

from django.urls import include, path
from shop import views

from eventtracking.django.views import legacy_event

urlpatterns = [
    path("", views.index, name="index"),
    path("login", views.login_demo, name="login"),
    path("order", views.order, name="order"),
    path("tracking/", include("eventtracking.django.urls")),
    path("event", legacy_event),  # Open edX's legacy /event form
]
