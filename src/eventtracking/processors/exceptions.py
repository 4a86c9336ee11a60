"""Exceptions processors raise (Open edX names)."""

from __future__ import annotations

from ..exceptions import EventTrackingError


class EventEmissionExit(EventTrackingError):
    """Raised by a processor to drop the event: later processors and backends never see it."""


class NoTransformerImplemented(EventTrackingError):
    """No transformer is registered for an event (kept for Open edX compatibility)."""


class NoBackendEnabled(EventTrackingError):
    """No backend is enabled for an event (kept for Open edX compatibility)."""
