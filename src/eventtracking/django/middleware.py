"""Request context middleware, sync and async: every event emitted while a request is
handled carries who made it and from where.

Add it after the session and authentication middleware::

    MIDDLEWARE = [
        ...,
        'django.contrib.sessions.middleware.SessionMiddleware',
        'django.contrib.auth.middleware.AuthenticationMiddleware',
        'eventtracking.django.middleware.TrackMiddleware',
    ]

For each request it enters the ``request`` context (see
`eventtracking.django.context`) on the default tracker, adds the fields of
the ``EVENT_TRACKING_CONTEXT_PROVIDERS`` once the URL is resolved, and leaves
the context when the response is returned or an exception propagates. The
context lives in a contextvar, so concurrent requests (threads or asyncio
tasks) never see each other's. Streaming response bodies are produced after
the context is gone.

With ``EVENT_TRACKING_REQUEST_EVENT = 'NAME'`` it also emits one event NAME per
request after the response (``method``, ``status``, ``GET``, ``POST`` with
password, token and other secret fields masked), except for paths matching
``TRACKING_IGNORE_URL_PATTERNS`` (``re.match`` on the path) and the browser
endpoint's own views.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase, QueryDict

from .. import diagnostics
from ..processors.redact import Redactor
from ..track import get_tracker
from ..tracker import Tracker
from .conf import Conf, get_conf
from .context import CONTEXT_NAME, REQUEST_ATTRIBUTE, request_context, user_fields

__all__ = ["RequestContextMiddleware", "TrackMiddleware"]

MAX_PARAM_LENGTH: Final = 512
_STATE: Final = "_eventtracking_state"
_SKIP: Final = "eventtracking_skip_request_event"
_FORMS: Final = ("application/x-www-form-urlencoded", "multipart/form-data")
_redactor = Redactor(fields=("data",))

Handler = Callable[[HttpRequest], Any]


class RequestContextMiddleware:
    """Enter the ``request`` context around each request (see module docs).

    Raises `ImproperlyConfigured` when it is created (at server start-up)
    if the settings are bad or the tracker could not be built.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        get_conf()  # raises, naming the bad setting
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        conf, tracker = get_conf(), get_tracker()
        user_id, username = user_fields(request)
        context = _begin(request, conf, tracker, user_id, username)
        with tracker.context(CONTEXT_NAME, context):
            response = self.get_response(request)
            _request_event(request, response, conf, tracker)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        conf, tracker = get_conf(), get_tracker()
        user_id, username = await _async_user_fields(request)
        context = _begin(request, conf, tracker, user_id, username)
        with tracker.context(CONTEXT_NAME, context):
            response = await self.get_response(request)
            _request_event(request, response, conf, tracker)
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: Mapping[str, Any],
    ) -> None:
        """Add the context providers' fields once the URL is resolved."""
        _extend(request, view_func, view_kwargs)

    async def _aprocess_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: Mapping[str, Any],
    ) -> None:
        # The same work, but without a hop to a thread in async mode.
        _extend(request, view_func, view_kwargs)


TrackMiddleware = RequestContextMiddleware
"""The name Open edX deployments use for this middleware."""


def _begin(
    request: HttpRequest, conf: Conf, tracker: Tracker, user_id: Any, username: str
) -> dict[str, Any]:
    context = request_context(request, conf, user_id, username)
    setattr(request, REQUEST_ATTRIBUTE, context)
    setattr(request, _STATE, (conf, tracker))
    return context


async def _async_user_fields(request: HttpRequest) -> tuple[Any, str]:
    auser: Callable[[], Awaitable[Any]] | None = getattr(request, "auser", None)
    if auser is None:
        return await sync_to_async(user_fields)(request)
    user = await auser()
    if user is None or not user.is_authenticated:
        return None, ""
    return user.pk, user.get_username()


def _extend(request: HttpRequest, view_func: Any, view_kwargs: Mapping[str, Any]) -> None:
    state = getattr(request, _STATE, None)
    if state is None:
        return
    conf, tracker = state
    if getattr(view_func, _SKIP, False):
        request.eventtracking_skip_request_event = True  # type: ignore[attr-defined]
    if not conf.providers:
        return
    extra: dict[str, Any] = {}
    for provider in conf.providers:
        try:
            found = provider(request, view_kwargs)
        except Exception:
            diagnostics.increment("django.provider_errors")
            diagnostics.log_burst(
                f"provider:{getattr(provider, '__qualname__', provider)}",
                "eventtracking context provider %r failed; its fields are left out",
                provider,
            )
            continue
        if found:
            extra.update(found)
    if extra:
        context = {**getattr(request, REQUEST_ATTRIBUTE), **extra}
        setattr(request, REQUEST_ATTRIBUTE, context)
        tracker.enter_context(CONTEXT_NAME, context)


def _request_event(
    request: HttpRequest, response: HttpResponseBase, conf: Conf, tracker: Tracker
) -> None:
    name = conf.request_event
    if name is None or getattr(request, _SKIP, False) or tracker.closed:
        return  # a tracker shut down must not turn every response into a 500
    path = request.META.get("PATH_INFO", "")
    if any(pattern.match(path) for pattern in conf.ignore_url_patterns):
        return
    data: dict[str, Any] = {
        "method": request.method,
        "status": response.status_code,
        "GET": _params(request.GET),
    }
    if request.content_type in _FORMS:
        try:
            data["POST"] = _params(request.POST)
        except Exception:  # the view read the body as a stream, or it is malformed
            data["POST"] = {}
    tracker.emit(name, _redactor({"data": data})["data"])


def _params(query: QueryDict) -> dict[str, Any]:
    return {
        key: _short(values[0]) if len(values) == 1 else [_short(v) for v in values]
        for key, values in query.lists()
    }


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_PARAM_LENGTH:
        return value[:MAX_PARAM_LENGTH]
    return value if isinstance(value, str) else str(value)
