"""Where a delivery backend keeps its journal when it is not told (``journal_dir=True``).

The root, first found of:

1. ``$EVENTTRACKING_JOURNAL_DIR``;
2. ``$XDG_STATE_HOME/eventtracking/journal`` (``~/.local/state/eventtracking/journal``),
   when it can be created and written;
3. ``<temporary directory>/eventtracking-<uid>/journal`` (made private to the user).

Under it each backend gets ``<name>-<digest>``: `name` is the delivery
backend's name (in configuration, its key in the tree) and the digest is
taken from the wrapped backend's class and, when it has one, its
``destination`` (a database and table, a URL, a file). So a process that
adopts the lanes of a dead one delivers them where they were meant to go,
and two applications of one user never deliver each other's events.

Within one process a directory belongs to one delivery backend at a time;
a default directory already in use gets a suffix (``-2``, ``-3``...).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Final

from .. import _state
from .journal import Journal
from .options import DeliveryOptions

ENV: Final = "EVENTTRACKING_JOURNAL_DIR"

_owners = _state.journal_owners  # journal directory -> its owner, process-wide


def _usable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def journal_root() -> Path:
    """The directory under which default journals live (see module docs)."""
    configured = os.environ.get(ENV)
    if configured:
        return Path(configured)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    root = Path(state) / "eventtracking" / "journal"
    if _usable(root):
        return root
    private = Path(tempfile.gettempdir()) / f"eventtracking-{os.getuid()}"
    try:
        private.mkdir(mode=0o700, exist_ok=True)
        info = private.lstat()
    except OSError as exc:
        raise ValueError(
            f"no writable directory for the delivery journal ({root}, {private}: {exc}); "
            f"set {ENV} or give journal_dir"
        ) from exc
    if private.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ValueError(
            f"{private} is not a private directory of this user; set {ENV} or give journal_dir"
        )
    return private / "journal"


def default_journal_dir(name: str, backend: Any) -> Path:
    """``<root>/<name>-<digest>`` for the delivery backend `name` wrapping `backend`."""
    kind = type(backend)
    identity = f"{kind.__module__}.{kind.__qualname__}"
    destination = getattr(backend, "destination", None)
    if isinstance(destination, str):
        identity += "\0" + destination
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".") or "backend"
    return journal_root() / f"{safe[:64]}-{digest}"


def claim(directory: Path, owner: Any, *, suffix: bool) -> Path:
    """Make `directory` `owner`'s for as long as it is open; ValueError if another holds it.

    With `suffix` (a default directory), a directory in use is replaced by
    the first free ``<directory>-2``, ``-3``... instead.
    """
    key = directory.resolve()
    n = 1
    while True:
        holder = _owners.get(key)
        if holder is None or holder.closed or holder is owner:
            _owners[key] = owner
            return key
        if not suffix:
            raise ValueError(
                f"journal_dir {str(key)!r} is already used by delivery backend {holder.name!r} "
                "in this process; give each delivery backend a directory of its own"
            )
        n += 1
        key = directory.resolve().with_name(f"{directory.name}-{n}")


def open_journal(options: DeliveryOptions, owner: Any) -> Journal | None:
    """The journal `options` ask for, its directory `owner`'s (ValueError if another's)."""
    if options.journal_dir is None:
        return None
    key = options.journal_dir
    if not options.journal_is_default:  # a default one was claimed when it was chosen
        key = claim(key, owner, suffix=False)
    return Journal(
        key,
        fsync_always=options.fsync == "always",
        segment_bytes=options.segment_bytes,
        disk_budget=options.disk_budget,
        cache_limit=options.queue_size,  # in memory: as many events as the queue may hold
        sync_interval=None if options.fsync == "always" else options.fsync_interval,
    )
