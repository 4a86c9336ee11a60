"""URLs of the test app."""

from __future__ import annotations

from django.urls import include, path

from eventtracking.django.views import legacy_event

from . import views

urlpatterns = [
    path("ctx", views.context),
    path("courses/<str:course_id>/ctx", views.context),
    path("actx", views.acontext),
    path("boom", views.boom),
    path("aboom", views.aboom),
    path("login", views.login_form),
    path("order", views.order),
    path("order-atomic", views.order_atomic),
    path("page", views.page),
    path("blank", views.blank),
    path("tracking/", include("eventtracking.django.urls")),
    path("recorded/events", views.recorded_events),
    path("event", legacy_event),
]
