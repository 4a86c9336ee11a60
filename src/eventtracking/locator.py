"""Where a tracker keeps the contexts that have been entered.

A context is a named mapping (``'request' -> {'user_id': 7, ...}``). Contexts
live in two layers, chosen explicitly by the caller:

* ``scope="task"`` (the default): visible only to the current thread or
  asyncio task and to tasks it starts, kept in a `contextvars.ContextVar`.
  Request and view contexts go here.
* ``scope="process"``: visible to every thread and task of the process, for
  contexts entered once at start-up (service, host, release).

Task contexts override process contexts, and within a layer a later context
overrides an earlier one; re-entering a name replaces its value and makes it
the latest. The merged view is computed when a context is entered or left,
not for every event.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from functools import partial
from typing import Any, Literal, Protocol, runtime_checkable

from ._copies import nested_keys

Scope = Literal["task", "process"]
SCOPES: tuple[Scope, ...] = ("task", "process")


class ContextView:
    """The merged contexts in effect and their names, shared until contexts change.

    `merged` must not be changed (copy it). `scratch` is a cache for values
    derived from this set of contexts (the registry keeps its annotations here).
    """

    __slots__ = ("merged", "names", "nested", "scratch", "version")

    def __init__(self, version: int, merged: dict[str, Any], names: tuple[str, ...]) -> None:
        self.version = version
        self.merged = merged
        self.names = names
        self.nested = nested_keys(merged)  # what a private copy of `merged` copies deeply
        self.scratch: dict[Any, Any] = {}


class _Stack:
    """An immutable ordered set of named contexts plus their merged view."""

    __slots__ = ("_combined", "entries", "merged", "names")

    def __init__(self, entries: tuple[tuple[str, Mapping[str, Any]], ...]) -> None:
        self.entries = entries
        merged: dict[str, Any] = {}
        for _, ctx in entries:
            merged.update(ctx)
        self.merged = merged
        self.names = tuple(name for name, _ in entries)
        # The merged view of both layers, filled on first use; its version says
        # which process layer it merged (see `_LayeredLocator.view`).
        self._combined: ContextView | None = None

    def enter(self, name: str, ctx: Mapping[str, Any]) -> _Stack:
        # A name entered again keeps its place, as a key assigned again in Open
        # edX's OrderedDict does: contexts entered after it still win.
        if any(e[0] == name for e in self.entries):
            return _Stack(tuple((n, ctx) if n == name else (n, c) for n, c in self.entries))
        return _Stack((*self.entries, (name, ctx)))

    def reinsert(self, name: str, ctx: Mapping[str, Any], successors: list[str]) -> _Stack:
        """Put `name` back before the first of `successors` still present (else last)."""
        rest = [e for e in self.entries if e[0] != name]
        later = set(successors)
        index = next((i for i, e in enumerate(rest) if e[0] in later), len(rest))
        rest.insert(index, (name, ctx))
        return _Stack(tuple(rest))

    def successors(self, name: str) -> list[str]:
        names = [e[0] for e in self.entries]
        return names[names.index(name) + 1 :] if name in names else []

    def exit(self, name: str) -> _Stack:
        if not any(e[0] == name for e in self.entries):
            raise KeyError(name)
        return _Stack(tuple(e for e in self.entries if e[0] != name))

    def get(self, name: str) -> Mapping[str, Any] | None:
        for entry_name, ctx in self.entries:
            if entry_name == name:
                return ctx
        return None


def _check(name: object, ctx: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"context name must be a str, not {type(name).__name__}")
    if not isinstance(ctx, Mapping):
        raise TypeError(f"context {name!r} must be a mapping, not {type(ctx).__name__}")


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")


@runtime_checkable
class ContextLocator(Protocol):
    """What a tracker needs from a locator. `get()` alone is the Open edX protocol."""

    def get(self) -> MutableMapping[str, Mapping[str, Any]]: ...


class _LiveView(MutableMapping[str, Mapping[str, Any]]):
    """The Open edX `located_context` mapping, backed by a locator's task layer."""

    def __init__(self, locator: _LayeredLocator) -> None:
        self._locator = locator

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        ctx = self._locator._task().get(name)
        if ctx is None:
            raise KeyError(name)
        return ctx

    def __setitem__(self, name: str, ctx: Mapping[str, Any]) -> None:
        self._locator.enter(name, ctx)

    def __delitem__(self, name: str) -> None:
        self._locator.exit(name)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self._locator._task().entries])

    def __len__(self) -> int:
        return len(self._locator._task().entries)


class _LayeredLocator(ABC):
    """Shared machinery: a process layer plus a per-thread or per-task layer."""

    def __init__(self) -> None:
        # Each locator has its own empty stack: a stack caches the merged view
        # of its locator (`_Stack._combined`), so no stack is ever shared by two.
        self._empty = _Stack(())
        self._process = _Stack(())
        self._process_version = 0
        self._process_lock = threading.Lock()

    # The task layer is what subclasses provide: where the current stack lives.
    @abstractmethod
    def _task(self) -> _Stack: ...

    @abstractmethod
    def _set_task(self, stack: _Stack) -> None: ...

    def stack_reader(self) -> Callable[[], _Stack]:
        """A function of no arguments that returns the current task-layer stack.

        `Tracker.emit` reads the stack's cached view (`_Stack._combined`)
        through it, and calls `view` only when that is missing or stale.
        """
        return self._task

    def get(self) -> MutableMapping[str, Mapping[str, Any]]:
        """A live mapping of the task-layer contexts (the Open edX interface)."""
        return _LiveView(self)

    def enter(self, name: str, ctx: Mapping[str, Any], scope: Scope = "task") -> None:
        """Enter context `name` in `scope`; re-entering a name replaces it in its place."""
        _check(name, ctx)
        _check_scope(scope)
        if scope == "task":
            self._set_task(self._task().enter(name, ctx))
        else:
            with self._process_lock:
                self._process = self._process.enter(name, ctx)
                self._process_version += 1

    def exit(self, name: str, scope: Scope = "task") -> None:
        """Leave context `name` in `scope`; KeyError if it was not entered there."""
        _check_scope(scope)
        if scope == "task":
            self._set_task(self._task().exit(name))
        else:
            with self._process_lock:
                self._process = self._process.exit(name)
                self._process_version += 1

    def save(self, name: str, scope: Scope = "task") -> tuple[Mapping[str, Any], list[str]] | None:
        """What `restore` needs to put context `name` back where it is now, or None."""
        stack = self._task() if scope == "task" else self._process
        ctx = stack.get(name)
        return None if ctx is None else (ctx, stack.successors(name))

    def restore(
        self, name: str, saved: tuple[Mapping[str, Any], list[str]], scope: Scope = "task"
    ) -> None:
        """Put back a context captured by `save`, at its old place in the order."""
        ctx, successors = saved
        if scope == "task":
            self._set_task(self._task().reinsert(name, ctx, successors))
        else:
            with self._process_lock:
                self._process = self._process.reinsert(name, ctx, successors)
                self._process_version += 1

    def lookup(self, name: str, scope: Scope = "task") -> Mapping[str, Any] | None:
        """The context entered as `name` in `scope`, or None."""
        return (self._task() if scope == "task" else self._process).get(name)

    def names(self, scope: Scope = "task") -> list[str]:
        """Names of the contexts entered in `scope`, oldest first."""
        stack = self._task() if scope == "task" else self._process
        return [name for name, _ in stack.entries]

    def view(self) -> ContextView:
        """The contexts in effect for this thread or task, merged (cached until they change)."""
        task = self._task()
        version = self._process_version
        combined = task._combined
        if combined is not None and combined.version == version:
            return combined
        process = self._process
        if process.entries:
            view = ContextView(
                version, {**process.merged, **task.merged}, process.names + task.names
            )
        else:
            view = ContextView(version, task.merged, task.names)
        # Benign race: concurrent readers compute the same value.
        task._combined = view
        return view

    def merged(self) -> dict[str, Any]:
        """The merged view of both layers. Shared: callers must copy before changing it."""
        return self.view().merged

    def context_names(self) -> tuple[str, ...]:
        """Names of the contexts in effect: process ones, then task ones."""
        return self.view().names

    def resolve(self) -> dict[str, Any]:
        """A fresh copy of the merged context, safe to hand to one event."""
        return self.merged().copy()


class DefaultContextLocator(_LayeredLocator):
    """Contexts isolated per thread and per asyncio task (contextvars), plus a process layer."""

    def __init__(self) -> None:
        super().__init__()
        self._var: ContextVar[_Stack] = ContextVar(f"eventtracking_context_{id(self)}")

    def _task(self) -> _Stack:
        return self._var.get(self._empty)

    def stack_reader(self) -> Callable[[], _Stack]:
        if type(self)._task is not DefaultContextLocator._task:
            return self._task  # a subclass keeps its stacks elsewhere
        return partial(self._var.get, self._empty)  # a C call: no Python frame per event

    def _set_task(self, stack: _Stack) -> None:
        self._var.set(stack)


class ThreadLocalContextLocator(_LayeredLocator):
    """Contexts isolated per thread only (asyncio tasks in one thread share them)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def _task(self) -> _Stack:
        stack: _Stack = getattr(self._local, "stack", self._empty)
        return stack

    def _set_task(self, stack: _Stack) -> None:
        self._local.stack = stack
