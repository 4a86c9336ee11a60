"""The browser endpoint: events from the JavaScript client, checked, then emitted server-side.

`browser_events` takes POST JSON (one event, a list, or ``{"events": [...]}``;
see `eventtracking.django.payload`), or a form with the same JSON in the
field ``events`` (what ``navigator.sendBeacon`` sends). `legacy_event` takes
Open edX's ``/event`` form fields ``event_type``, ``event`` (a JSON string)
and ``page``.

Both are CSRF-protected (``X-CSRFToken`` header or ``csrfmiddlewaretoken``
field) whether or not ``CsrfViewMiddleware`` is installed, and answer bad
input with a 4xx JSON body ``{"error": CODE, "detail": "what was wrong"}``.
A request is checked whole (shape, limits, names, the registry under the
strict policy, the rate limit) before any event is emitted: it is stored
entirely or not at all.

The same input gets the same answer under runserver, gunicorn and an ASGI
server, and never a 5xx: a Content-Length that is not digits is a 400, a
chunked body (no Content-Length) a 411, a body without Content-Type reads
as JSON, and a JSON integer beyond 64 bits a 400 that says to send it as a
string.

Accepted events are emitted on the default tracker inside the server's
``request`` context (from the middleware, or built here) and a ``browser``
context ``{event_source: 'browser', page, client_time, client: <the
browser's own context>}``, so the browser can add to the context but never
replace ``user_id``, ``ip``, ``session`` or any other server field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, Final

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from .. import diagnostics
from ..exceptions import EventError
from ..locator import ContextView
from ..logsafe import escape
from ..registry.checker import EventChecker
from ..track import get_tracker
from ..tracker import Tracker
from .conf import BrowserConf, get_conf
from .context import CONTEXT_NAME, REQUEST_ATTRIBUTE, request_context, user_fields
from .django_tracker import validation_policy
from .payload import BrowserEvent, PayloadError, check_event, load_json, parse_events
from .ratelimit import CacheRateLimiter, Limiter, RateLimiter

__all__ = ["browser_events", "legacy_event"]

JSON_TYPES: Final = ("application/json", "text/plain")
FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")
LEGACY_LABELS: Final = {"name": "event_type", "data": "event", "page": "page"}


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, answering a failure with our JSON error instead of an HTML page."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        return _error(
            403,
            "csrf_failed",
            f"CSRF verification failed: {reason} Send the csrftoken cookie's value in the "
            "X-CSRFToken header (or a csrfmiddlewaretoken form field).",
        )


_csrf = _CsrfCheck(lambda request: HttpResponse())
_limiter: tuple[BrowserConf, Limiter] | None = None


def _error(status: int, code: str, detail: str, **headers: str) -> JsonResponse:
    diagnostics.increment(f"browser.rejected.{code}")
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _no_request_event(view: Callable[[HttpRequest], HttpResponse]) -> Any:
    view.eventtracking_skip_request_event = True  # type: ignore[attr-defined]
    return view


@_no_request_event
@csrf_exempt  # checked inside, so a failure gets a JSON answer
def browser_events(request: HttpRequest) -> HttpResponse:
    """Accept a batch of browser events (see module docs)."""
    return _handle(request, _events_from_body)


@_no_request_event
@csrf_exempt
def legacy_event(request: HttpRequest) -> HttpResponse:
    """Accept one event as Open edX's ``/event`` form: ``event_type``, ``event`` (JSON), ``page``.

    Also takes a JSON object with the same three keys.
    """
    return _handle(request, _legacy_from_body)


Parser = Callable[[HttpRequest, BrowserConf], list[BrowserEvent]]


def _handle(request: HttpRequest, parse: Parser) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "method_not_allowed", "send events with POST", Allow="POST")
    conf = get_conf()
    limits = conf.browser
    try:
        length = _content_length(request)
    except PayloadError as exc:
        return _error(exc.status, exc.code, exc.detail)
    if length is not None and length > limits.max_body_bytes:
        return _error(
            413, "too_large", f"the body has {length} bytes; at most {limits.max_body_bytes}"
        )
    if length is None and request.META.get("HTTP_TRANSFER_ENCODING"):
        # Django's WSGI request (runserver, gunicorn) reads no body without a length,
        # so a chunked body would arrive empty there; refuse it on every server alike.
        return _error(
            411,
            "length_required",
            "chunked bodies are not accepted: send the body with a Content-Length header "
            "(fetch() and navigator.sendBeacon() do)",
        )
    try:
        rejected = _csrf.process_view(request, _handle, (), {})
        if rejected is not None:
            return rejected
        events = parse(request, limits)
    except PayloadError as exc:
        return _error(exc.status, exc.code, exc.detail)
    except RequestDataTooBig:
        return _error(413, "too_large", f"the body is larger than {limits.max_body_bytes} bytes")
    except (SuspiciousOperation, MultiPartParserError, UnreadablePostError) as exc:
        return _error(400, "bad_form", f"the form body cannot be read: {exc}")
    tracker = get_tracker()
    if tracker.closed:  # shutting down: nothing can be stored, and the client may retry
        return _error(
            503, "unavailable", "event tracking is shut down; retry later", Retry_After="5"
        )
    server = getattr(request, REQUEST_ATTRIBUTE, None)
    with ExitStack() as stack:
        if server is None:  # no middleware: build the request context here
            user_id, username = user_fields(request)
            server = request_context(request, conf, user_id, username)
            stack.enter_context(tracker.context(CONTEXT_NAME, server))
        wait = _rate_limiter(limits).take(
            [("session", server.get("session", "")), ("ip", server.get("ip", ""))], len(events)
        )
        if wait:
            detail = (
                "more events in one request than the rate limit allows at once"
                if math.isinf(wait)
                else f"too many events from this session or address; retry in {wait:.1f}s"
            )
            retry = "3600" if math.isinf(wait) else str(math.ceil(wait))
            return _error(429, "rate_limited", detail, Retry_After=retry)
        referer = request.META.get("HTTP_REFERER", "")
        try:
            _check_registry(tracker, events, referer)
        except EventError as exc:
            return _error(400, "validation_failed", str(exc))
        try:
            for event in events:
                with tracker.context("browser", _browser_context(event, referer)):
                    tracker.emit(event.name, event.data)
        except EventError as exc:  # e.g. a strictly documented "browser" context type
            return _error(400, "validation_failed", str(exc))
    diagnostics.increment("browser.accepted", len(events))
    return JsonResponse({"accepted": len(events)})


def _content_length(request: HttpRequest) -> int | None:
    """The declared body length; None without one; PayloadError when it is not a length.

    Django itself reads the header with ``int()`` and would raise (a 500) on
    ``abc``; ``+5``, `` 5`` and ``-1`` are not lengths either (RFC 9110: digits only).
    """
    value = request.META.get("CONTENT_LENGTH")
    if value is None or value == "":
        return None
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise PayloadError(
            400,
            "bad_content_length",
            f"Content-Length {escape(text, 40)!r} is not a length: send the body's size "
            "in bytes as digits",
        )
    return int(text)


def _is_json(kind: str) -> bool:
    # No Content-Type at all reads as JSON: Django's runserver (wsgiref) reports a missing
    # one as text/plain, so this is what every server then does alike.
    return kind in JSON_TYPES or not kind


def _events_from_body(request: HttpRequest, limits: BrowserConf) -> list[BrowserEvent]:
    kind = request.content_type or ""
    if _is_json(kind):
        return parse_events(request.body, limits)
    if kind in FORM_TYPES:
        text = request.POST.get("events")
        if text is None:
            raise PayloadError(400, "bad_shape", "a form body needs the field 'events' (JSON)")
        return parse_events(text.encode("utf-8", "surrogatepass"), limits)
    raise PayloadError(
        415,
        "unsupported_media_type",
        f"Content-Type {escape(kind, 80)!r}: send application/json, or a form with 'events'",
    )


def _legacy_from_body(request: HttpRequest, limits: BrowserConf) -> list[BrowserEvent]:
    kind = request.content_type or ""
    fields: dict[str, Any]
    if kind in FORM_TYPES:
        fields = {key: request.POST.get(key) for key in ("event_type", "event", "page")}
    elif _is_json(kind):
        document = _json_object(request.body)
        fields = {key: document.get(key) for key in ("event_type", "event", "page")}
    else:
        raise PayloadError(
            415,
            "unsupported_media_type",
            f"Content-Type {escape(kind, 80)!r}: send a form with event_type, event and page",
        )
    data: Any = fields["event"]
    if data is None or data == "":
        data = {}
    elif isinstance(data, str):
        data = load_json(data.encode("utf-8", "surrogatepass"), "event")
    event = {"name": fields["event_type"], "data": data}
    if fields["page"] is not None:
        event["page"] = fields["page"]
    return [check_event(event, limits, "event", LEGACY_LABELS)]


def _json_object(body: bytes) -> dict[str, Any]:
    document = load_json(body, "the body")
    if not isinstance(document, dict):
        raise PayloadError(400, "bad_shape", "send an object with event_type, event and page")
    return document


def _browser_context(event: BrowserEvent, referer: str) -> dict[str, Any]:
    context: dict[str, Any] = {"event_source": "browser", "page": event.page or referer}
    if event.timestamp is not None:
        context["client_time"] = event.timestamp
    context["client"] = event.context
    return context


def _check_registry(tracker: Tracker, events: list[BrowserEvent], referer: str) -> None:
    """Raise ValidationError for the first event the strict policy would refuse at emit."""
    registry = tracker.registry
    if not len(registry):
        return
    policy = validation_policy(tracker)
    max_size = tracker.max_event_size
    checker = EventChecker(registry, "strict", max_size, annotate=False)
    now = datetime.now(UTC)
    for event in events:
        entry = registry.event_entry(event.name)
        override = entry[2] if entry is not None else None
        if (override or policy) != "strict":
            continue
        draft = {"id": "0" * 36, "name": event.name, "timestamp": now, "data": event.data}
        if max_size is not None:
            draft["context"] = {
                **tracker.resolve_context(),
                **_browser_context(event, referer),
            }
        checker.check(draft, ContextView(0, {}, ()))


def _rate_limiter(limits: BrowserConf) -> Limiter:
    global _limiter
    current = _limiter
    if current is None or current[0] is not limits:
        rates = [("session", limits.session_rate), ("ip", limits.ip_rate)]
        if limits.rate_limit_cache is None:
            limiter: Limiter = RateLimiter(rates)
        else:
            from django.core.cache import caches

            limiter = CacheRateLimiter(rates, caches[limits.rate_limit_cache])
        current = _limiter = (limits, limiter)
    return current[1]
