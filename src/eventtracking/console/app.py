"""The console as an ASGI application (Starlette), with the token check of ``serve``.

Routes: ``/`` live view, ``/charts``, ``/catalogue``, ``/delivery`` (and
``POST /delivery/replay`` when replay is allowed), ``/api/events``,
``/api/stream`` (server-sent events), ``/api/charts``, ``/metrics`` and
``/static/{file}``. With a token, every request must carry it: the header
``Authorization: Bearer TOKEN`` or ``X-Console-Token: TOKEN``, the query
parameter ``token=TOKEN`` (which also sets a cookie, so links keep working),
or that cookie. Tokens are compared in constant time.

Two more guards keep other web sites out of a console on 127.0.0.1, where
there is often no token: requests must name the console's own host (so a
DNS-rebinding page cannot read events), and the replay form carries a
secret made at start-up (so a page elsewhere cannot post it).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator, Sequence
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qs

from ..exceptions import MissingExtraError

try:
    from starlette.applications import Starlette
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route
    from starlette.types import ASGIApp, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("starlette", "console") from exc

from .filters import FilterError
from .service import Console, Params, Reply
from .stream import KEEPALIVE_SECONDS

COOKIE: Final = "eventtracking_console"
LOCAL_HOSTS: Final = ("127.0.0.1", "localhost", "::1", "[::1]")


def _params(request: Request) -> Params:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, reply.headers, media_type=reply.content_type)


def create_app(
    console: Console, token: str | None = None, hosts: Sequence[str] = LOCAL_HOSTS
) -> ASGIApp:
    """The ASGI app serving `console`; with `token`, every request must carry it.

    `hosts` are the names requests may address the console by (``"*"``: any).
    """
    form_secret = secrets.token_urlsafe(24)
    secret_input = f'<input type="hidden" name="form_secret" value="{form_secret}">'

    async def live(request: Request) -> Response:
        return _response(console.live("", _params(request)))

    async def charts(request: Request) -> Response:
        return _response(await _in_thread(console.charts, "", _params(request)))

    async def catalogue(request: Request) -> Response:
        return _response(await _in_thread(console.catalogue, "", _params(request)))

    async def delivery(request: Request) -> Response:
        return _response(await _in_thread(console.delivery, "", _params(request), secret_input))

    async def replay(request: Request) -> Response:
        # The page's forms are url-encoded; parsed here, so no multipart library is needed.
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        offered = (fields.get("form_secret") or [""])[0].encode()
        if console.allow_replay and not hmac.compare_digest(offered, form_secret.encode()):
            return Response("403: send replay from the console's own page\n", 403)
        return _response(await _in_thread(console.replay, "", fields, secret_input))

    async def events(request: Request) -> Response:
        return _response(await _in_thread(console.events, "", _params(request)))

    async def charts_json(request: Request) -> Response:
        return _response(await _in_thread(console.charts_json, "", _params(request)))

    async def metrics(request: Request) -> Response:
        return _response(await _in_thread(console.metrics))

    async def static(request: Request) -> Response:
        return _response(console.static(request.path_params["name"]))

    async def stream(request: Request) -> Response:
        try:
            selected, position = console.stream_start(
                _params(request), request.headers.get("last-event-id")
            )
        except FilterError as exc:
            return Response(f'{{"error": "{exc}"}}', 400, media_type="application/json")

        async def chunks() -> AsyncIterator[str]:
            nonlocal position
            yield "retry: 500\n\n"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + console.stream_seconds
            idle = 0.0
            while loop.time() < deadline:
                if await request.is_disconnected():
                    return
                text, position = console.stream_chunk(selected, position)
                if text:
                    idle = 0.0
                    yield text
                else:
                    idle += 0.1
                    if idle >= KEEPALIVE_SECONDS:
                        idle = 0.0
                        yield ": keepalive\n\n"
                    await asyncio.sleep(0.1)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(chunks(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", live),
        Route("/charts", charts),
        Route("/catalogue", catalogue),
        Route("/delivery", delivery),
        Route("/delivery/replay", replay, methods=["POST"]),
        Route("/api/events", events),
        Route("/api/stream", stream),
        Route("/api/charts", charts_json),
        Route("/metrics", metrics),
        Route("/static/{name}", static),
    ]
    app: ASGIApp = Starlette(routes=routes)
    app = TrustedHostMiddleware(app, allowed_hosts=list(hosts))
    return TokenGate(app, token) if token else app


async def _in_thread(func: Any, *args: Any) -> Reply:
    # Store reads block: keep them off the event loop, so the live stream never stalls.
    result: Reply = await asyncio.to_thread(func, *args)
    return result


class TokenGate:
    """ASGI middleware: refuse (401) any HTTP request that does not carry the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the token must not be empty")
        self.app = app
        self._token = token.encode()

    def _offered(self, scope: Scope) -> tuple[list[bytes], bool]:
        offered: list[bytes] = []
        for key, value in scope.get("headers", []):
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                offered.append(value[7:].strip())
            elif key == b"x-console-token":
                offered.append(value.strip())
            elif key == b"cookie":
                cookie: SimpleCookie = SimpleCookie()
                cookie.load(value.decode("latin-1"))
                if COOKIE in cookie:
                    offered.append(cookie[COOKIE].value.encode())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = [value.encode() for value in query.get("token", [])]
        return offered + from_query, bool(from_query)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered, in_query = self._offered(scope)
        # compare_digest on every offer, so timing says nothing about the token
        ok = [hmac.compare_digest(value, self._token) for value in offered]
        if not any(ok):
            body = b"401: this console needs its token (header Authorization: Bearer TOKEN, "
            body += b"X-Console-Token, or ?token=)\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"www-authenticate", b'Bearer realm="eventtracking console"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if not in_query:
            await self.app(scope, receive, send)
            return

        async def with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self._token.decode()}; HttpOnly; SameSite=Strict; Path=/"
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())],
                }
            await send(message)

        await self.app(scope, receive, with_cookie)
