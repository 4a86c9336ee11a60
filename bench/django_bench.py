"""Benchmark the Django integration: middleware overhead and browser endpoint throughput.

1. Middleware overhead: the same view through Django's WSGI handler, called in
   a loop in this process, with and without ``TrackMiddleware`` (after the
   session and authentication middleware), anonymous and logged in, and with
   the optional per-request event. The figure is microseconds per request.
2. Endpoint throughput: the browser endpoint served by Django's threaded WSGI
   server in a child process (full middleware stack, CSRF on, rate limit off,
   events into a SQLite store), loaded from 127.0.0.1 by ``wrk`` when it is
   installed (Debian ``wrk``), else by a Python thread pool; bounded in time.
   After the run the store is counted: every accepted event must be there.

    .venv/bin/python bench/django_bench.py [--requests 20000] [--seconds 10]

Figures go to a table on stdout and to bench/out/django.json.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.urls import include, path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TOKEN = "a" * 32  # a CSRF secret: the cookie and the header carry the same value
SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
TRACK = "eventtracking.django.middleware.TrackMiddleware"


def configure(data: Path, store: Path | None) -> None:
    """Django settings for both parts (this module is the URLconf)."""
    import django
    from django.conf import settings

    backends: dict[str, Any] = {"null": {"ENGINE": "django_bench.NullBackend"}}
    os.environ.setdefault("EVENTTRACKING_JOURNAL_DIR", str(data / "journal"))
    if store is not None:
        backends = {
            "store": {
                "ENGINE": "eventtracking.backends.sqlite.SQLiteBackend",
                "OPTIONS": {"path": str(store)},
                "DELIVERY": {"max_delay": 0.2},
            }
        }
    settings.configure(
        SECRET_KEY="bench-secret-key",
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "eventtracking.django",
        ],
        MIDDLEWARE=[SESSION, CSRF, AUTH, TRACK],
        ROOT_URLCONF="django_bench",
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": data / "db",
                "CONN_MAX_AGE": None,  # persistent connections, as in production
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
        EVENT_TRACKING_ENABLED=True,
        EVENT_TRACKING_BACKENDS=backends,
        EVENT_TRACKING_BROWSER={"RATE_LIMIT": None},
    )
    django.setup()


class NullBackend:
    """Keeps nothing: the figures measure the middleware, not a sink."""

    def send(self, event: dict[str, Any]) -> None:
        pass


def plain(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def with_user(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(str(request.user.pk))


urlpatterns = [
    path("plain", plain),
    path("user", with_user),
    path("tracking/", include("eventtracking.django.urls")),
]


# -- part 1: middleware overhead ----------------------------------------------------------


def environ(path: str, cookie: str, body: bytes = b"") -> dict[str, Any]:
    """A WSGI environ: a GET, or with `body` a JSON POST carrying the CSRF token."""
    extra: dict[str, Any] = {}
    if body:
        extra = {
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_CSRFTOKEN": TOKEN,
        }
        cookie = f"{cookie}; csrftoken={TOKEN}" if cookie else f"csrftoken={TOKEN}"
    return {
        **extra,
        "REQUEST_METHOD": "POST" if body else "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench",
        "HTTP_USER_AGENT": "Mozilla/5.0 (bench)",
        "HTTP_ACCEPT_LANGUAGE": "en",
        "HTTP_COOKIE": cookie,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }


def middleware_figures(n: int, repeat: int) -> dict[str, float]:
    """Microseconds per request of each variant: the fastest of `repeat` interleaved rounds.

    Rounds alternate between the variants, so a machine busy with something
    else slows them alike, and the minimum is the figure least disturbed.
    """
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status.startswith("200"), status

    cookie = session_cookie()
    base = [SESSION, AUTH]
    full = [SESSION, CSRF, AUTH, TRACK]
    request_event = {"EVENT_TRACKING_REQUEST_EVENT": "server.request"}
    Variant = tuple[list[str], str, str, bytes, dict[str, Any]]
    variants: dict[str, Variant] = {
        "anonymous, without": (base, "/plain", "", b"", {}),
        "anonymous, with": ([*base, TRACK], "/plain", "", b"", {}),
        "logged in, without": (base, "/user", cookie, b"", {}),
        "logged in, with": ([*base, TRACK], "/user", cookie, b"", {}),
        "logged in, with request event": ([*base, TRACK], "/user", cookie, b"", request_event),
        "endpoint, 1 event": (full, "/tracking/events", cookie, body_of(1), {}),
        "endpoint, 20 events": (full, "/tracking/events", cookie, body_of(20), {}),
    }
    handlers = {}
    for name, (middleware, url, cookie_header, body, overrides) in variants.items():
        with override_settings(MIDDLEWARE=middleware, **overrides):
            handlers[name] = WSGIHandler()
            for _ in range(300):  # warm up: imports, caches, the database connection
                handlers[name](environ(url, cookie_header, body), start_response)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeat):
        for name, (_, url, cookie_header, body, overrides) in variants.items():
            handler = handlers[name]
            envs = [environ(url, cookie_header, body) for _ in range(n)]
            with override_settings(**overrides):
                gc.collect()
                start = time.perf_counter()
                for env in envs:
                    handler(env, start_response)
                elapsed = time.perf_counter() - start
            best[name] = min(best[name], elapsed / n * 1e6)
    return {**best, **direct_figures(cookie, n * 5, repeat)}


def direct_figures(cookie: str, n: int, repeat: int) -> dict[str, float]:
    """Microseconds of TrackMiddleware's own work per request, the user already loaded
    (the view would load it anyway): request context, enter and leave, providers."""
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.core.handlers.wsgi import WSGIRequest
    from django.http import HttpResponse

    from eventtracking.django.middleware import TrackMiddleware

    response = HttpResponse("ok")
    figures = {}
    for name, cookie_header in (("anonymous", ""), ("logged in", cookie)):
        request = WSGIRequest(environ("/user", cookie_header))
        SessionMiddleware(lambda r: response).process_request(request)
        AuthenticationMiddleware(lambda r: response).process_request(request)
        _ = request.user.pk  # loaded now, as the view would
        middleware = TrackMiddleware(lambda r: response)
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(n):
                middleware(request)
                middleware.process_view(request, plain, (), {})
            runs.append((time.perf_counter() - start) / n * 1e6)
        figures[f"TrackMiddleware alone, {name}"] = min(runs)
    return figures


def session_cookie() -> str:
    """A logged-in session (a real row in the session table) as a Cookie header."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


# -- part 2: endpoint throughput ------------------------------------------------------------


def serve(port: int, store: Path, data: Path) -> None:
    """Child process: serve the endpoint until SIGTERM, then close the tracker (flush)."""
    configure(data, store)
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from eventtracking import get_tracker

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), Quiet)
    server.daemon_threads = False  # server_close() then waits for requests in progress
    server.set_app(WSGIHandler())

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    server.serve_forever()
    server.server_close()
    tracker = get_tracker()
    tracker.close()
    print(tracker.stats().get("browser.accepted", 0), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def body_of(events: int) -> bytes:
    batch = [
        {"name": "client.video.played", "data": {"video_id": f"v{i}", "position": i * 1.5}}
        for i in range(events)
    ]
    return json.dumps({"events": batch}).encode()


HEADERS = {
    "Content-Type": "application/json",
    "X-CSRFToken": TOKEN,
    "Cookie": f"csrftoken={TOKEN}",
}


def with_wrk(url: str, body: bytes, seconds: float, tmp: Path) -> tuple[int, int, str]:
    """(requests, non-2xx, tool) from wrk: 2 threads, 16 connections, `seconds`."""
    script = tmp / "post.lua"
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in HEADERS.items())
    script.write_text(f'wrk.method = "POST"\nwrk.body = [[{body.decode()}]]\n{headers}')
    wrk = shutil.which("wrk")
    assert wrk is not None
    out = subprocess.run(
        [wrk, "-t2", "-c16", f"-d{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, int(bad[1]) if bad else 0, "wrk -t2 -c16"


def with_threads(url: str, body: bytes, seconds: float, cap: int) -> tuple[int, int, str]:
    """(requests, non-2xx, tool) from 16 keep-alive connections in threads."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    deadline = time.monotonic() + seconds
    counts = [0, 0]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.monotonic() < deadline:
            with lock:
                if counts[0] >= cap:
                    return
                counts[0] += 1
            conn.request("POST", path, body, HEADERS)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                with lock:
                    counts[1] += 1
        conn.close()

    with ThreadPoolExecutor(16) as pool:
        for _ in range(16):
            pool.submit(worker)
    return counts[0], counts[1], "Python, 16 threads"


def endpoint_figures(seconds: float, cap: int, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for per_request in (1, 20):
        store = tmp / f"endpoint-{per_request}.db"
        port = free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--store", str(store)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            url = f"http://127.0.0.1:{port}/tracking/events"
            body = body_of(per_request)
            start = time.perf_counter()
            if shutil.which("wrk"):
                requests, bad, tool = with_wrk(url, body, seconds, tmp)
            else:
                requests, bad, tool = with_threads(url, body, seconds, cap)
            elapsed = time.perf_counter() - start
        finally:
            child.send_signal(signal.SIGTERM)
            out, _ = child.communicate(timeout=60)
        accepted = int(out.strip() or 0)
        from eventtracking.store import Query
        from eventtracking.store.sqlite import SQLiteStore

        reader = SQLiteStore(store, create=False)
        stored = reader.count(Query(limit=None))
        reader.close()
        rows.append(
            {
                "events_per_request": per_request,
                "tool": tool,
                "seconds": round(elapsed, 1),
                "requests": requests,
                "rejected": bad,
                "requests_per_s": round(requests / elapsed),
                "events_per_s": round(accepted / elapsed),
                "stored": stored,
                "accepted": accepted,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="per round and variant")
    parser.add_argument("--repeat", type=int, default=40, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint load run")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.store, args.store.parent)
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        configure(tmp, None)
        middleware = middleware_figures(args.requests, args.repeat)
        endpoint = endpoint_figures(args.seconds, cap=1_000_000, tmp=tmp)
    report(middleware, endpoint)


def report(middleware: dict[str, float], endpoint: list[dict[str, Any]]) -> None:
    overhead = {
        "anonymous": middleware["anonymous, with"] - middleware["anonymous, without"],
        "logged in": middleware["logged in, with"] - middleware["logged in, without"],
        "logged in + request event": middleware["logged in, with request event"]
        - middleware["logged in, without"],
    }
    print("Middleware: microseconds per request through Django's WSGI handler")
    for name, us in middleware.items():
        print(f"  {name:34} {us:8.1f} us")
    for name, us in overhead.items():
        print(f"  overhead, {name:24} {us:8.1f} us")
    print("Browser endpoint (Django's threaded dev server, CSRF on, SQLite store):")
    for row in endpoint:
        print(
            f"  {row['events_per_request']:>2} event(s)/request, {row['tool']}: "
            f"{row['requests_per_s']} requests/s, {row['events_per_s']} events/s, "
            f"{row['rejected']} rejected, stored {row['stored']} of {row['accepted']} accepted"
        )
        if row["stored"] != row["accepted"]:
            raise SystemExit("stored events differ from accepted ones")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "middleware_us": {k: round(v, 1) for k, v in middleware.items()},
        "overhead_us": {k: round(v, 1) for k, v in overhead.items()},
        "endpoint": endpoint,
    }
    (OUT / "django.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
