"""The server-side request context: who made a request, from where, with what.

`request_context(request, user_id, username)` builds the Open edX ``request``
context: ``user_id, username, session, ip, host, agent, path, referer,
accept_language, client_id`` plus ``request_id``. Extra providers
(setting ``EVENT_TRACKING_CONTEXT_PROVIDERS``) add fields once the URL is
resolved; the default one, `course_context`, adds ``course_id`` and ``org_id``.

Privacy: the session key is never stored; ``session`` is an HMAC of it keyed
with ``SECRET_KEY``. Header-derived strings are cut to `MAX_FIELD_LENGTH`
characters so a client cannot inflate every event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from ..event import new_event_id
from .conf import Conf

__all__ = [
    "CONTEXT_NAME",
    "MAX_FIELD_LENGTH",
    "REQUEST_ATTRIBUTE",
    "SERVER_FIELDS",
    "client_ip",
    "course_context",
    "hash_session",
    "request_context",
    "user_fields",
]

CONTEXT_NAME: Final = "request"
REQUEST_ATTRIBUTE: Final = "eventtracking_context"
"""The attribute of a request that holds its ``request`` context (set by the middleware)."""
MAX_FIELD_LENGTH: Final = 2048
SERVER_FIELDS: Final = frozenset(
    {
        "user_id",
        "username",
        "session",
        "ip",
        "host",
        "agent",
        "path",
        "referer",
        "accept_language",
        "client_id",
        "request_id",
        "course_id",
        "org_id",
    }
)
"""Context fields only the server sets; the browser endpoint refuses them from clients."""

_SESSION_SALT: Final = "eventtracking.django.session"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_GA_COOKIE: Final = re.compile(r"GA\d+\.\d+\.(\d+\.\d+)")
_hashes: dict[tuple[str, str], str] = {}


def hash_session(session_key: str | None) -> str:
    """An HMAC-SHA256 of the session key under ``SECRET_KEY`` (32 hex digits); '' for none."""
    if not session_key:
        return ""
    key = (settings.SECRET_KEY, session_key)
    digest = _hashes.get(key)
    if digest is None:
        digest = salted_hmac(_SESSION_SALT, session_key, algorithm="sha256").hexdigest()[:32]
        if len(_hashes) >= 10_000:  # bounded: a cache of recent sessions only
            _hashes.clear()
        _hashes[key] = digest
    return digest


def client_ip(meta: Mapping[str, Any], trusted_proxies: int) -> str:
    """The client's address: REMOTE_ADDR, or with N trusted proxies the N-th from the right
    of X-Forwarded-For (addresses further left are set by the client and not trusted)."""
    if trusted_proxies > 0:
        forwarded = str(meta.get("HTTP_X_FORWARDED_FOR", ""))
        hops: list[str] = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-trusted_proxies] if len(hops) >= trusted_proxies else hops[0]
    return str(meta.get("REMOTE_ADDR") or "")


def user_fields(request: HttpRequest) -> tuple[Any, str]:
    """(user_id, username) of ``request.user``: (None, '') for anonymous or no auth middleware.

    Evaluates the lazy ``request.user`` (a session read); call from sync code.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None, ""
    username: str = user.get_username()
    return user.pk, username


def request_context(
    request: HttpRequest, conf: Conf, user_id: Any, username: str
) -> dict[str, Any]:
    """The ``request`` context of `request` (see module docs); never raises for bad headers."""
    meta = request.META
    session = getattr(request, "session", None)
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    request_id = None
    if conf.request_id_header is not None:
        supplied = meta.get(conf.request_id_header, "")
        if _REQUEST_ID.fullmatch(supplied):
            request_id = supplied
    return {
        "user_id": user_id,
        "username": username,
        "session": hash_session(session.session_key if session is not None else None),
        "ip": client_ip(meta, conf.trusted_proxy_count),
        "host": host,
        "agent": _cut(meta.get("HTTP_USER_AGENT", "")),
        "path": _cut(meta.get("PATH_INFO", "")),
        "referer": _cut(meta.get("HTTP_REFERER", "")),
        "accept_language": _cut(meta.get("HTTP_ACCEPT_LANGUAGE", "")),
        "client_id": _client_id(request, conf.client_id_cookie),
        "request_id": request_id or new_event_id(),
    }


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_FIELD_LENGTH else text[:MAX_FIELD_LENGTH]


def _client_id(request: HttpRequest, cookie: str | None) -> str:
    """The Google Analytics client id (``GA1.2.123.456`` -> ``123.456``), else ''."""
    if cookie is None:
        return ""
    value = request.COOKIES.get(cookie, "")
    match = _GA_COOKIE.fullmatch(value)
    return match[1] if match else _cut(value) if value and len(value) <= 128 else ""


_COURSE_KWARGS: Final = ("course_id", "course_key_string", "course_key")


def course_context(request: HttpRequest, view_kwargs: Mapping[str, Any]) -> dict[str, str] | None:
    """``course_id`` and ``org_id`` from the URL's ``course_id`` (or ``course_key_string``) kwarg.

    Understands ``course-v1:ORG+COURSE+RUN`` and the old ``ORG/COURSE/RUN``.
    The default context provider; None when the URL names no course.
    """
    for key in _COURSE_KWARGS:
        value = view_kwargs.get(key)
        if value:
            course_id = str(value)[:MAX_FIELD_LENGTH]
            return {"course_id": course_id, "org_id": _org_of(course_id)}
    return None


def _org_of(course_id: str) -> str:
    if course_id.startswith("course-v1:"):
        return course_id[len("course-v1:") :].split("+", 1)[0]
    if course_id.count("/") == 2:
        return course_id.split("/", 1)[0]
    return ""
