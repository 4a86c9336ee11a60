"""The shop's views: one page for the browser client, one view that emits server-side."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from eventtracking import get_tracker

from .models import Order


@ensure_csrf_cookie  # tracker.js sends the csrftoken cookie back in X-CSRFToken
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/index.html", {"orders": Order.objects.order_by("-id")[:5]})


@require_POST
def login_demo(request: HttpRequest) -> HttpResponse:
    """Log in as the user 'demo' (created on first use), to see user_id in the context."""
    user, _ = get_user_model().objects.get_or_create(username="demo")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("index")


@require_POST
def order(request: HttpRequest) -> HttpResponse:
    """Place an order; its event is emitted only if the transaction commits.

    EVENT_TRACKING_ON_COMMIT lists 'shop.order.*', so this plain emit waits for
    the commit of the request's transaction (ATOMIC_REQUESTS). With fail=1 the
    view raises after saving: the order is rolled back and no event is stored.
    """
    item = request.POST.get("item", "book")
    placed = Order.objects.create(item=item)
    get_tracker().emit("shop.order.placed", {"order_id": placed.pk, "item": item})
    if request.POST.get("fail"):
        raise RuntimeError("payment declined (the demo's rolled-back order)")
    return redirect("index")
