"""Process-wide hooks in one place: what runs at ``os.fork()`` and at interpreter exit.

This is the only module that calls ``os.register_at_fork`` and
``atexit.register``, and it does so on the first registration, never at
import. Two kinds of participants:

* functions, for module state (`on_fork`): the id generator of `event`
  forgets its random bits in a forked child;
* live objects, held weakly (`track` / `untrack`): the delivery backends,
  which empty their in-caller batches before a fork, start clean in the
  child, and are flushed then closed at exit.

At exit every tracked object is flushed for up to its own
``exit_timeout`` seconds, all within one deadline (the longest of them),
then each is closed. A failing hook is logged and the others still run.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

from . import _state, diagnostics

Hook = Callable[[], object]


class Participant(Protocol):
    """What a tracked object offers the hooks (see `eventtracking.delivery.DeliveryBackend`)."""

    name: str

    @property
    def closed(self) -> bool: ...

    @property
    def exit_timeout(self) -> float: ...

    def flush(self, timeout: float = ...) -> bool: ...

    def close(self, timeout: float = ...) -> None: ...

    def _before_fork(self) -> None: ...

    def _after_fork_in_parent(self) -> None: ...

    def _after_fork_in_child(self) -> None: ...


# The registry itself (hook lists, tracked objects, its lock) is `_state.HOOKS`.
_hooks = _state.HOOKS


def _install() -> None:
    with _hooks.lock:
        if _hooks.installed:
            return
        _hooks.installed = True
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_in_child
    )
    atexit.register(_at_exit)


def on_fork(
    *,
    before: Hook | None = None,
    after_in_parent: Hook | None = None,
    after_in_child: Hook | None = None,
) -> None:
    """Run these functions around every later ``os.fork()`` (for the life of the process)."""
    _install()
    pairs = (
        (_hooks.before, before),
        (_hooks.parent, after_in_parent),
        (_hooks.child, after_in_child),
    )
    for hooks, hook in pairs:
        if hook is not None:
            hooks.append(hook)


def track(obj: Participant) -> None:
    """Include `obj` in the fork and exit hooks until `untrack` (or until it is collected)."""
    _install()
    _hooks.live.add(obj)


def untrack(obj: Participant) -> None:
    """Leave the hooks (the object is closed)."""
    _hooks.live.discard(obj)


def _guarded(label: str, hook: Hook) -> None:
    try:
        hook()
    except Exception:
        diagnostics.log_burst(f"process:{label}", "process hook %s failed", label)


def _before_fork() -> None:
    _hooks.forking[:] = [obj for obj in list(_hooks.live) if not obj.closed]
    for hook in reversed(_hooks.before):
        _guarded("before_fork", hook)
    for obj in _hooks.forking:
        _guarded(f"before_fork:{obj.name}", obj._before_fork)


def _after_fork_in_parent() -> None:
    for obj in _hooks.forking:
        _guarded(f"after_fork:{obj.name}", obj._after_fork_in_parent)
    _hooks.forking.clear()
    for hook in _hooks.parent:
        _guarded("after_fork_in_parent", hook)


def _after_in_child() -> None:
    _hooks.lock = threading.Lock()
    for hook in _hooks.child:
        _guarded("after_fork_in_child", hook)
    for obj in list(_hooks.live):
        _guarded(f"after_fork_in_child:{obj.name}", obj._after_fork_in_child)
    _hooks.forking.clear()


def _at_exit() -> None:
    live = [obj for obj in list(_hooks.live) if not obj.closed]
    if not live:
        return
    deadline = time.monotonic() + max(obj.exit_timeout for obj in live)
    for obj in live:
        left = min(obj.exit_timeout, deadline - time.monotonic())
        if left > 0:
            _guarded(f"atexit:{obj.name}", partial(obj.flush, left))
    for obj in live:
        _guarded(f"atexit:{obj.name}", obj.close)
