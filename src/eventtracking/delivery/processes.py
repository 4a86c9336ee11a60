"""Process-wide hooks for delivery backends: fork and interpreter exit.

After ``os.fork()`` every live delivery backend is told, in the child, to
start clean (an empty queue, a new worker on first use, a lane of its own);
what the parent had queued stays with the parent. At interpreter exit each
open backend is flushed for up to its own ``atexit_timeout`` seconds (within
one deadline, the longest of them), then closed.
"""

from __future__ import annotations

import atexit
import os
import time
import weakref
from typing import Any, Protocol

from .. import diagnostics


class _Hooked(Protocol):
    name: str
    options: Any

    @property
    def closed(self) -> bool: ...

    def flush(self, timeout: float = ...) -> bool: ...

    def close(self, timeout: float = ...) -> None: ...

    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[_Hooked] = weakref.WeakSet()


def track(backend: _Hooked) -> None:
    """Include `backend` in the fork and exit hooks until `untrack`."""
    _live.add(backend)


def untrack(backend: _Hooked) -> None:
    """Leave the hooks (the backend is closed)."""
    _live.discard(backend)


def _after_fork_in_child() -> None:
    for backend in list(_live):
        backend._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all_at_exit() -> None:
    live = [backend for backend in list(_live) if not backend.closed]
    if not live:
        return
    deadline = time.monotonic() + max(b.options.atexit_timeout for b in live)
    for backend in live:
        left = min(backend.options.atexit_timeout, deadline - time.monotonic())
        try:
            if left > 0:
                backend.flush(left)
        except Exception:
            diagnostics.log_burst(f"atexit:{backend.name}", "flush at exit failed")
    for backend in live:
        try:
            backend.close()
        except Exception:
            diagnostics.log_burst(f"atexit:{backend.name}", "close at exit failed")
