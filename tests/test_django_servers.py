"""The browser endpoint under real servers: runserver, gunicorn (WSGI) and uvicorn (ASGI).

Each server runs in a child process bound to 127.0.0.1 on a free port and is
sent raw HTTP (so that malformed lengths and chunked bodies really go over
the wire). Whatever the client sends, no server answers 5xx, and the same
input gets the same status under every server. Request counts are bounded
and every socket has a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services import require_driver

require_driver("django", "django")
require_driver("gunicorn", "test")
require_driver("uvicorn", "test")

TESTS = Path(__file__).parent
TOKEN = "a" * 32  # a CSRF token: the cookie and the header only have to agree
TIMEOUT = 10.0
SERVERS = ("runserver", "gunicorn", "uvicorn")


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.body)
        return parsed


@dataclass
class Server:
    name: str
    port: int
    log: Path

    def send(self, raw: bytes) -> Answer:
        """Send one raw request (with ``Connection: close``) and read the whole answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as sock:
            sock.sendall(raw)
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        if b"transfer-encoding: chunked" in head.lower():
            body = _dechunk(body)
        return Answer(status, body)

    def post(
        self,
        body: bytes,
        path: str = "/tracking/events",
        headers: dict[str, str] | None = None,
        length: str | None = "auto",
    ) -> Answer:
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Connection: close",
            f"Cookie: csrftoken={TOKEN}",
            f"X-CSRFToken: {TOKEN}",
        ]
        merged = {"Content-Type": "application/json", **(headers or {})}
        lines += [f"{k}: {v}" for k, v in merged.items() if v is not None]
        if length == "auto":
            lines.append(f"Content-Length: {len(body)}")
        elif length is not None:
            lines.append(f"Content-Length: {length}")
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        return self.send(head + body)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(name: str, port: int) -> list[str]:
    python = [sys.executable, "-m"]
    if name == "gunicorn":
        options = ["-b", f"127.0.0.1:{port}", "-w", "1", "--graceful-timeout", "2"]
        help_text = subprocess.run(
            [*python, "gunicorn", "--help"], capture_output=True, text=True, timeout=30
        ).stdout
        if "--no-control-socket" in help_text:  # gunicorn 24+ would open one in $HOME
            options.append("--no-control-socket")
        return [*python, "gunicorn", *options, "django_server_app:wsgi"]
    if name == "uvicorn":
        options = ["--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"]
        return [*python, "uvicorn", *options, "--no-access-log", "django_server_app:asgi"]
    return [sys.executable, str(TESTS / "django_server_app.py"), str(port)]


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name: str = request.param
    where = tmp_path_factory.mktemp(name)
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "EVENTTRACKING_SERVER_DB": str(where / "db.sqlite3"),
    }
    log = where / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(_command(name, port), cwd=TESTS, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield Server(name, port, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


GOOD = json.dumps({"name": "client.video.played", "data": {"n": 1}}).encode()


def test_a_good_request_is_accepted(server: Server) -> None:
    answer = server.post(GOOD)
    assert (answer.status, answer.json()) == (200, {"accepted": 1})


def test_no_content_type_reads_as_json_everywhere(server: Server) -> None:
    answer = server.post(GOOD, headers={"Content-Type": None})  # type: ignore[dict-item]
    assert (answer.status, answer.json()) == (200, {"accepted": 1})
    legacy = json.dumps({"event_type": "client.x", "event": "{}", "page": "p"}).encode()
    assert server.post(legacy, path="/event", headers={"Content-Type": None}).status == 200  # type: ignore[dict-item]


@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1e3", "0x10"])
def test_a_malformed_length_is_a_400(server: Server, length: str) -> None:
    answer = server.post(GOOD, length=length)
    assert answer.status == 400, answer.body
    if answer.body.startswith(b"{"):  # ours; gunicorn and uvicorn refuse before Django
        assert answer.json()["error"] == "bad_content_length"


def test_a_chunked_body_is_a_411_that_says_what_to_send(server: Server) -> None:
    chunked = f"{len(GOOD):x}\r\n".encode() + GOOD + b"\r\n0\r\n\r\n"
    answer = server.post(chunked, headers={"Transfer-Encoding": "chunked"}, length=None)
    assert answer.status == 411, answer.body
    assert answer.json()["error"] == "length_required"
    assert "Content-Length" in str(answer.json()["detail"])


def test_an_integer_beyond_64_bits_is_a_clear_400(server: Server) -> None:
    body = b'{"name": "client.x", "data": {"n": 123456789012345678901234567890}}'
    answer = server.post(body)
    assert answer.status == 400
    assert answer.json()["error"] == "integer_too_large"
    assert "as a string" in str(answer.json()["detail"])


def test_hostile_names_and_headers_forge_no_log_line(server: Server) -> None:
    forged = "\n2099-01-01 00:00:00 CRITICAL django.security forged\r\x1b[2J\x00"
    tracker_doc = {"name": "client.doc", "data": {f"f{forged}": 1}}
    body = json.dumps([tracker_doc, {"name": f"client.{forged}", "data": {}}]).encode()
    headers = {"User-Agent": "ua\x1b[31m", "Referer": "http://x/\x1b[2J", "Accept-Language": "\x00"}
    assert server.post(body, headers=headers).status < 500
    time.sleep(0.2)
    for line in server.log.read_bytes().split(b"\n"):
        assert not line.startswith(b"2099"), line
        assert b"\x1b" not in line and b"\x00" not in line, line


header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
) | st.sampled_from(["", "abc", "-1", "99999999", "chunked", "gzip", "application/json"])
requests = st.fixed_dictionaries(
    {
        "path": st.sampled_from(["/tracking/events", "/event"]),
        "body": st.binary(max_size=200)
        | st.sampled_from([GOOD, b"{}", b"[]", b'{"events": [1]}', b"1" * 40]),
        "content_type": st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "image/png",
                None,
            ]
        ),
        "length": st.sampled_from(["auto", None, "abc", "0", "5", "-3"]),
        "extra": st.dictionaries(
            st.sampled_from(
                [
                    "Origin",
                    "Referer",
                    "X-Forwarded-For",
                    "Accept-Language",
                    "Content-Encoding",
                    "Expect",
                ]
            ),
            header_values,
            max_size=3,
        ),
    }
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
def test_no_generated_request_gets_a_5xx(server: Server, request: dict[str, object]) -> None:
    headers = {"Content-Type": request["content_type"], **request["extra"]}  # type: ignore[dict-item]
    body: bytes = request["body"]  # type: ignore[assignment]
    length = request["length"]
    if isinstance(length, str) and length.isdigit():  # a server rightly waits for what is due
        body = body.ljust(int(length))[: int(length)]
    answer = server.post(
        body,
        path=str(request["path"]),
        headers=headers,  # type: ignore[arg-type]
        length=request["length"],  # type: ignore[arg-type]
    )
    assert 0 < answer.status < 500, (answer.status, answer.body[:300])
