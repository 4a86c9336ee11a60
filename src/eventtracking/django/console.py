"""The console inside a Django project: the same pages as ``eventtracking serve``, for staff.

Mount it from our URLconf under any prefix::

    path("tracking/console/", include("eventtracking.django.console_urls"))

and name the store in the settings (a SQLite path or ``postgresql://`` URL)::

    EVENT_TRACKING_CONSOLE = {
        "STORE": BASE_DIR / "events.db",
        "ALLOW_REPLAY": False,        # True: staff may re-deliver dead letters
        "JOURNAL_DIR": None,          # other processes' delivery metrics (default: none)
        "DEAD_LETTERS": [],           # more dead-letter stores to list
        "METRICS_TOKEN": None,        # lets a scraper read metrics/ with a Bearer token
    }

Every view needs an active staff user: an anonymous visitor is sent to
``LOGIN_URL``, a signed-in user who is not staff gets 403. ``metrics/`` also
answers a request carrying ``Authorization: Bearer <METRICS_TOKEN>``.
Delivery health includes the delivery workers of this process (read from
the default tracker); replay sends a dead letter back through the backend
of this process that it came from. The console needs the console extra
(``pip install 'event-tracking[console]'``).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from ..console.factory import open_console
from ..console.filters import FilterError
from ..console.health import in_process_workers
from ..console.service import Console, Reply
from ..exceptions import ImproperlyConfigured, StoreError
from ..track import get_tracker

SETTING: Final = "EVENT_TRACKING_CONSOLE"
_KEYS: Final = ("STORE", "ALLOW_REPLAY", "JOURNAL_DIR", "DEAD_LETTERS", "METRICS_TOKEN")
_lock = threading.Lock()
_console: list[Console] = []  # the one console of this process, built on first use


def _conf() -> dict[str, Any]:
    conf = getattr(settings, SETTING, None)
    if not isinstance(conf, Mapping) or not conf.get("STORE"):
        raise ImproperlyConfigured(
            f"{SETTING} must be a dict with STORE (a SQLite path or postgresql:// URL), "
            f"e.g. {SETTING} = {{'STORE': BASE_DIR / 'events.db'}}"
        )
    unknown = sorted(set(conf) - set(_KEYS))
    if unknown:
        raise ImproperlyConfigured(f"{SETTING}: unknown keys {unknown}; valid: {list(_KEYS)}")
    return dict(conf)


def _replay_backend(name: str) -> tuple[Any, bool]:
    for worker in in_process_workers(get_tracker()):
        if worker.name == name:
            return worker.backend, False
    raise ImproperlyConfigured(
        f"no delivery backend named {name!r} runs in this process; replay it with "
        "`eventtracking deadletters replay --to TARGET`"
    )


def get_console() -> Console:
    """The console of this process, built from the settings on first use."""
    with _lock:
        if _console:
            return _console[0]
        conf = _conf()
        journal = conf.get("JOURNAL_DIR")
        console = open_console(
            str(conf["STORE"]),
            journal_dir=Path(journal) if journal else None,
            dead_letters=[Path(p) for p in conf.get("DEAD_LETTERS") or ()],
            replay_backend=_replay_backend if conf.get("ALLOW_REPLAY") else None,
            tracker=get_tracker,
            registry=lambda: get_tracker().registry,
            stream_seconds=30.0,
        )
        _console.append(console)
        return console


def reset_console() -> None:
    """Close the console so the next request builds it from the current settings."""
    with _lock:
        while _console:
            _console.pop().close()


@receiver(setting_changed)
def _setting_changed(setting: str, **kwargs: Any) -> None:
    if setting == SETTING:
        reset_console()


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def _response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for key, value in reply.headers.items():
        response[key] = value
    return response


def _params(request: HttpRequest) -> dict[str, list[str]]:
    return {key: request.GET.getlist(key) for key in request.GET}


def _base() -> str:
    return reverse("eventtracking_console:live").rstrip("/")


def _unavailable(exc: Exception) -> HttpResponse:
    text = f"<!doctype html><title>console unavailable</title><p id=error>{escape(str(exc))}</p>"
    return HttpResponse(text, status=503)


def staff_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Run `view` with the console for active staff users only (see module docs)."""

    def wrapped(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not _is_staff(request):
            return HttpResponse("403: the console is for staff users", status=403)
        try:
            console = get_console()
        except (ImproperlyConfigured, StoreError) as exc:
            return _unavailable(exc)
        return view(request, console, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@require_GET
@staff_view
def live(request: HttpRequest, console: Console) -> HttpResponse:
    """The live view."""
    return _response(console.live(_base(), _params(request)))


@require_GET
@staff_view
def charts(request: HttpRequest, console: Console) -> HttpResponse:
    """Rates per type, top types and top values of a field."""
    return _response(console.charts(_base(), _params(request)))


@require_GET
@staff_view
def catalogue(request: HttpRequest, console: Console) -> HttpResponse:
    """The catalogue with sparklines and drift."""
    return _response(console.catalogue(_base(), _params(request)))


def _csrf_input(request: HttpRequest) -> str:
    token = escape(get_token(request), quote=True)
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'


@require_GET
@csrf_protect
@staff_view
def delivery(request: HttpRequest, console: Console) -> HttpResponse:
    """Delivery health and dead letters."""
    return _response(console.delivery(_base(), _params(request), _csrf_input(request)))


@require_POST
@csrf_protect
@staff_view
def replay(request: HttpRequest, console: Console) -> HttpResponse:
    """Re-deliver dead letters (403 unless ALLOW_REPLAY)."""
    form = {key: request.POST.getlist(key) for key in request.POST}
    return _response(console.replay(_base(), form, _csrf_input(request)))


@require_GET
@staff_view
def events(request: HttpRequest, console: Console) -> HttpResponse:
    """JSON: the newest matching events."""
    return _response(console.events(_base(), _params(request)))


@require_GET
@staff_view
def charts_json(request: HttpRequest, console: Console) -> HttpResponse:
    """JSON: the charts' numbers."""
    return _response(console.charts_json(_base(), _params(request)))


@require_GET
@staff_view
def stream(request: HttpRequest, console: Console) -> HttpResponseBase:
    """Server-sent events for the live view (each connection lasts 30 s, then reconnects)."""
    try:
        selected, position = console.stream_start(
            _params(request), request.headers.get("Last-Event-ID")
        )
    except FilterError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    response = StreamingHttpResponse(
        console.stream(selected, position), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@require_GET
@staff_view
def static(request: HttpRequest, console: Console, name: str) -> HttpResponse:
    """The console's script and style sheet."""
    return _response(console.static(name))


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for staff or a scraper with ``METRICS_TOKEN``."""
    try:
        conf = _conf()
    except ImproperlyConfigured as exc:
        return _unavailable(exc)
    token = conf.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    offered = header[7:].strip() if header[:7].lower() == "bearer " else ""
    scraper = bool(token) and hmac.compare_digest(offered.encode(), str(token).encode())
    if not scraper and not _is_staff(request):
        return HttpResponse("403: metrics are for staff or a METRICS_TOKEN", status=403)
    try:
        console = get_console()
    except (ImproperlyConfigured, StoreError) as exc:
        return _unavailable(exc)
    return _response(console.metrics())
