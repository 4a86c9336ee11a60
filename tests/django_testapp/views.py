"""Views for the tests: they report the context they see and emit events."""

from __future__ import annotations

import asyncio
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from eventtracking import get_tracker
from eventtracking.django.transaction import emit_on_commit
from eventtracking.django.views import browser_events

from .models import Order


def context(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    get_tracker().emit("server.test", {"via": "sync"})
    return JsonResponse(get_tracker().resolve_context())


async def acontext(request: HttpRequest) -> JsonResponse:
    delay = float(request.GET.get("delay", "0"))
    before = get_tracker().resolve_context()
    await asyncio.sleep(delay)
    get_tracker().emit("server.test", {"via": "async", "user": request.GET.get("user")})
    return JsonResponse({"before": before, "after": get_tracker().resolve_context()})


def boom(request: HttpRequest) -> HttpResponse:
    get_tracker().emit("server.boom", {})
    raise RuntimeError("boom")


async def aboom(request: HttpRequest) -> HttpResponse:
    get_tracker().emit("server.boom", {})
    raise RuntimeError("boom")


def login_form(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def order(request: HttpRequest) -> HttpResponse:
    """Create an order and emit on commit; ?fail=1 raises after, rolling back (ATOMIC_REQUESTS)."""
    placed = Order.objects.create(item="book")
    emit_on_commit("shop.order.placed", {"order_id": placed.pk})
    get_tracker().emit("shop.order.viewed", {"order_id": placed.pk})
    if request.GET.get("fail"):
        raise RuntimeError("payment failed")
    return HttpResponse("ok")


def order_atomic(request: HttpRequest) -> HttpResponse:
    with transaction.atomic():
        placed = Order.objects.create(item="pen")
        emit_on_commit("shop.order.placed", {"order_id": placed.pk})
        if request.GET.get("fail"):
            transaction.set_rollback(True)
    return HttpResponse("ok")


PAGE = """<!doctype html>
<html><head><title>eventtracking test page</title></head>
<body>
<p id="status">loading</p>
<script src="/static/eventtracking/tracker.js" data-endpoint="{endpoint}"
        data-flush-interval="{interval}"></script>
<script>
  eventtracking.enterContext('page', {{section: 'test', user_id: 'forged'}});
  eventtracking.emit('client.page.loaded', {{title: document.title}});
  eventtracking.flush().then(function () {{
    eventtracking.emit('client.page.left', {{reason: 'navigate'}});
    document.getElementById('status').textContent = 'ready';
  }});
</script>
</body></html>
"""


@ensure_csrf_cookie
def page(request: HttpRequest) -> HttpResponse:
    """A page that emits one event at once and one only when the page is hidden (beacon)."""
    endpoint = request.GET.get("endpoint", "/tracking/events")
    return HttpResponse(PAGE.format(endpoint=endpoint, interval=600000))


def blank(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>elsewhere</title><p>elsewhere</p>")


RECORDED: list[str] = []
"""Content types of the requests `recorded_events` received, in order."""
FAIL_NEXT: list[int] = [0]
"""How many of the next requests `recorded_events` answers with 503."""


@csrf_exempt
def recorded_events(request: HttpRequest) -> HttpResponse:
    """The browser endpoint, noting each request's content type; can fail on demand."""
    RECORDED.append(request.content_type or "")
    if FAIL_NEXT[0] > 0:
        FAIL_NEXT[0] -= 1
        return HttpResponse("try later", status=503)
    return browser_events(request)
