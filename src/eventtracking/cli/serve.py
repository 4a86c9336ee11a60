"""``eventtracking serve``: the console (live events, charts, catalogue, delivery) in a browser.

Needs the console extra (``pip install 'event-tracking[console]'``). Binds
127.0.0.1 unless told otherwise; any other address needs a token
(``--token`` or ``$EVENTTRACKING_CONSOLE_TOKEN``), checked on every request.
Read-only unless started with ``--allow-replay``. Every problem at start-up
(a store that is missing or unreadable, a port in use, a non-local bind
without a token, the extra not installed) ends with one line on stderr and
exit status 2.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from pathlib import Path
from typing import Any, Final

import click

from ..delivery.paths import ENV as JOURNAL_ENV
from ..delivery.paths import journal_root
from ..exceptions import MissingExtraError, StoreError

TOKEN_ENV: Final = "EVENTTRACKING_CONSOLE_TOKEN"
STORE_ENV: Final = "EVENTTRACKING_STORE"
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")


class ServeError(click.ClickException):
    """A one-line start-up error; exit status 2."""

    exit_code = 2


def is_local(host: str) -> bool:
    """True for a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; ServeError when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host}: not an address this machine has ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "is in use; choose another with --port" if exc.errno == 98 else f"({exc})"
        raise ServeError(f"cannot listen on {host}:{port}: the port {reason}") from None
    sock.set_inheritable(True)
    return sock


def _hosts(host: str) -> list[str]:
    """The Host names requests may use: local names, or any when bound elsewhere (token)."""
    from ..console.app import LOCAL_HOSTS

    if not is_local(host):
        return ["*"]  # reachable by many names; the token keeps strangers out
    return [*LOCAL_HOSTS, host, f"[{host}]"]


def _journal_dir(given: str | None) -> Path | None:
    if given:
        return Path(given)
    try:
        return journal_root()
    except ValueError:
        return None  # no default directory: delivery health shows what --dead-letters gives


@click.command("serve")
@click.option(
    "--store",
    "store_path",
    default="events.db",
    envvar=STORE_ENV,
    metavar="PATH|URL",
    help=f"The event store: a SQLite path or postgresql:// URL (default: ${STORE_ENV}, "
    "else ./events.db).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    metavar="TOKEN",
    help=f"Required on every request (default: ${TOKEN_ENV}); needed to bind a non-local "
    "address. 16+ characters of letters, digits and ._~+/=-",
)
@click.option(
    "--allow-replay", is_flag=True, help="Allow re-delivering dead letters (read-only otherwise)."
)
@click.option(
    "--replay-to",
    metavar="TARGET",
    help="Where replayed dead letters go: a store or a backend component (default: --store).",
)
@click.option(
    "--journal-dir",
    envvar=JOURNAL_ENV,
    metavar="DIR",
    help="Where delivery workers write their metrics and dead letters (default: the journal root).",
)
@click.option(
    "--dead-letters",
    "dead_letters",
    multiple=True,
    metavar="PATH",
    help="A dead-letter store to show besides those under --journal-dir (repeatable).",
)
def serve_command(
    store_path: str,
    host: str,
    port: int,
    token: str | None,
    allow_replay: bool,
    replay_to: str | None,
    journal_dir: str | None,
    dead_letters: tuple[str, ...],
) -> None:
    """Serve the console: live events, charts, the catalogue and delivery health.

    Open the printed address in a browser; Ctrl-C stops it.
    """
    if token is not None and not _TOKEN.fullmatch(token):
        raise ServeError("--token must be 16 to 256 letters, digits or ._~+/=- characters")
    if not is_local(host) and not token:
        raise ServeError(
            f"--host {host} is reachable from other machines: give --token "
            f"(or ${TOKEN_ENV}) so that only you can read the events"
        )
    if replay_to and not allow_replay:
        raise ServeError("--replay-to needs --allow-replay")
    try:
        import uvicorn

        from ..console.app import create_app
        from ..console.factory import open_console, sink_replay
    except MissingExtraError as exc:
        raise ServeError(str(exc)) from None
    except ImportError as exc:
        raise ServeError(str(MissingExtraError(exc.name or "uvicorn", "console"))) from None
    sock = bind(host, port)
    try:
        console = open_console(
            store_path,
            journal_dir=_journal_dir(journal_dir),
            dead_letters=[Path(p) for p in dead_letters],
            replay_backend=sink_replay(replay_to or store_path) if allow_replay else None,
        )
    except StoreError as exc:
        sock.close()
        raise ServeError(str(exc)) from None
    try:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        mode = "replay allowed" if allow_replay else "read-only"
        click.echo(
            f"eventtracking console on http://{shown}:{bound}/ ({console.label}, {mode}); "
            "Ctrl-C stops it",
            err=True,
        )
        config: Any = uvicorn.Config(
            create_app(console, token, _hosts(host)),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        # uvicorn re-raises Ctrl-C once it has stopped: that is the normal end.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        console.close()
        sock.close()
