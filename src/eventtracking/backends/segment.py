"""Send events to Segment through the host's ``analytics`` module (the Open edX `SegmentBackend`).

The host application configures Segment's Python library once, globally, as
edx-platform does (``analytics.write_key = settings.LMS_SEGMENT_KEY``); this
backend only calls ``analytics.track(user_id, name, event, context=...)``
with the whole event as the properties. It takes no options and never raises
at construction. It looks for the module ``analytics`` (the name Open edX
imports); failing that, for ``segment.analytics`` (segment-analytics-python),
but only once the host has given that one a write key. With neither, events
are not sent (counted under ``segment.not_configured``, warned about once).

Segment's ``context`` is built from the event context as Open edX builds it:

=====================  ==========================================
``context.client_id``  ``context["Google Analytics"].clientId``
``context.ip``         ``context.ip``
``context.agent``      ``context.userAgent``
``context.path``       ``context.page.path``
``context.referer``    ``context.page.referrer``
``context.page``       ``context.page.url``; without it, ``https://`` +
                       ``context.host`` + ``context.path`` when both exist
=====================  ==========================================

Events without a name or ``context.user_id`` are skipped, as in Open edX.
To send to Segment's batch API without the ``analytics`` module, with
batching and retries, see `eventtracking.backends.segment_http.SegmentHTTPBackend`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlunsplit

from .. import diagnostics

__all__ = ["SegmentBackend"]

analytics: Any
try:
    import analytics  # type: ignore[import-not-found,no-redef]
except ImportError:
    analytics = None


def _segment_analytics() -> ModuleType | None:
    """segment-analytics-python's module, when installed and given a write key by the host."""
    try:
        from segment import analytics as module  # type: ignore[import-untyped]
    except ImportError:
        return None
    return module if getattr(module, "write_key", None) else None


class SegmentBackend:
    """Send each event as a Segment ``track`` call through ``analytics`` (see module docs)."""

    def send(self, event: Mapping[str, Any]) -> None:
        """Track `event` for its ``context.user_id``; skip it without a name or a user id."""
        client = analytics if analytics is not None else _segment_analytics()
        if client is None:
            diagnostics.increment("segment.not_configured")
            diagnostics.warn_once(
                ("segment.not_configured",),
                "SegmentBackend: no configured Segment 'analytics' module; events are not sent "
                "(install segment-analytics-python and set its write_key)",
            )
            return
        context = event.get("context", {})
        user_id = context.get("user_id")
        name = event.get("name")
        if name is None or user_id is None:
            return
        client.track(user_id, name, event, context=segment_context(context))


def segment_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Segment's ``context`` for an Open edX event context (only the fields that are set)."""
    result: dict[str, Any] = {}
    client_id = context.get("client_id")
    if client_id is not None:
        result["Google Analytics"] = {"clientId": client_id}
    ip = context.get("ip")
    if ip is not None:
        result["ip"] = ip
    agent = context.get("agent")
    if agent is not None:
        result["userAgent"] = agent
    path = context.get("path")
    referer = context.get("referer")
    url = context.get("page")
    if path and not url:
        host = context.get("host")
        if host:
            # Segment reads host and path from the URL; the scheme is a guess it ignores.
            url = urlunsplit(("https", host, path, "", ""))
    if path is not None or referer is not None or url is not None:
        page: dict[str, Any] = {}
        if path is not None:
            page["path"] = path
        if referer is not None:
            page["referrer"] = referer
        if url is not None:
            page["url"] = url
        result["page"] = page
    return result
