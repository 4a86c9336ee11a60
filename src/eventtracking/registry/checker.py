"""Validation at emit: look up the event's type, run its validator, apply the policy.

Under ``warn`` the event is always kept: each (type, rule, field) problem is
logged once (at most `MAX_LOGGED_PROBLEMS` lines per event, and within the
budget of `diagnostics.warn_once`) and counted under ``validation.RULE``, and
the event carries the problems in ``event["meta"]["problems"]``. Under
``strict`` the first problem raises `ValidationError`. Under ``off`` nothing
is checked. Every event of a
registered type carries ``event["meta"]["type"]`` (the version id) and
``event["meta"]["contexts"]`` (context name -> version id) for the documented
contexts in effect, unless the tracker uses the four-key Open edX envelope.

``event["meta"]`` is shared by the events of one type under one set of
contexts (no copy per event): treat it as read-only, and replace it rather
than change it in a processor. Events with problems get their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import diagnostics
from ..exceptions import ValidationError
from ..locator import ContextView
from ..serialization import dumps
from .model import Policy
from .registry import Registry
from .validate import Problem, problem

# Problems of one event logged one per line; the rest in one line (each is counted).
MAX_LOGGED_PROBLEMS = 5


class EventChecker:
    """Checks events against a registry under a policy; one per tracker."""

    def __init__(
        self,
        registry: Registry,
        policy: Policy,
        max_event_size: int | None,
        annotate: bool,
    ) -> None:
        self.registry = registry
        self.policy: Policy = policy
        self.max_event_size = max_event_size
        self.annotate = annotate
        self._contexts: dict[tuple[str, ...], dict[str, str]] = {}
        self._contexts_version = -1
        self._last_names: tuple[str, ...] | None = None
        self._last_ids: dict[str, str] = {}
        # Stamps the entries this checker caches in context views; replaced
        # whenever the registry changes, which makes them all stale at once.
        self._key = object()
        # Problems found in this tracker's events (`Tracker.stats`).
        self.counters = diagnostics.Counters()
        # Read by emit for every event: an attribute, kept current below.
        self.on = bool(registry._current) or max_event_size is not None
        registry.watch(self)

    def registry_changed(self) -> None:
        """Forget cached lookups (called by the registry after every change)."""
        self._key = object()
        self.on = bool(self.registry._current) or self.max_event_size is not None

    def active(self) -> bool:
        """True when there is anything to check or annotate."""
        return self.on

    def context_ids(self, names: tuple[str, ...]) -> dict[str, str]:
        """Version ids of the documented contexts among `names` (cached per set of names)."""
        registry = self.registry
        if names is self._last_names and self._contexts_version == registry.version:
            return self._last_ids  # the common case: the same stack as the last event
        if self._contexts_version != registry.version:
            self._contexts = {}
            self._contexts_version = registry.version
        ids = self._contexts.get(names)
        if ids is None:
            ids = {}
            for name in names:
                version = registry.current(name, "context")
                if version is not None:
                    ids[name] = version.id
            self._contexts[names] = ids
        self._last_names, self._last_ids = names, ids
        return ids

    def meta_if_valid(
        self, name: str, data: Mapping[str, Any], view: ContextView
    ) -> dict[str, Any] | None:
        """The common case in one step: the meta for a valid event of a registered type.

        None means "not that simple" (unregistered type, a problem, a size
        limit): `check_turned_down` the built event then. Has no side effects.
        """
        hit = view.scratch.get(name)
        if hit is None or hit[0] is not self._key:
            hit = self._entry(name, view)
        validator = hit[1]
        if validator is not None and validator(data):
            return None  # check_turned_down runs the validator again, to report
        meta: dict[str, Any] | None = hit[2]
        return meta

    def _entry(self, name: str, view: ContextView) -> tuple[object, Any, dict[str, Any] | None]:
        """(key, validator or None when off, meta or None) for `name`, cached in `view`.

        The view's scratch is shared by the trackers that share its locator;
        the key makes another checker's entries (and stale ones) miss.
        """
        key = self._key
        entry = self.registry._hot.get(name)
        if entry is None or self.max_event_size is not None:
            hit: tuple[object, Any, dict[str, Any] | None] = (key, None, None)
        else:
            type_id, validator, override = entry
            off = (override or self.policy) == "off"
            hit = (key, None if off else validator, self._meta(type_id, view))
        view.scratch[name] = hit
        return hit

    def check(self, event: dict[str, Any], view: ContextView) -> None:
        """Validate `event` in place: annotate, warn, or raise (see module docs)."""
        if self.annotate:
            meta = self.meta_if_valid(event["name"], event["data"], view)
            if meta is not None:
                event["meta"] = meta
                return
        self.check_turned_down(event, view)

    def check_turned_down(self, event: dict[str, Any], view: ContextView) -> None:
        """`check` for an event that `meta_if_valid` has just turned down (skips that step)."""
        self._check_slowly(event, self.registry._hot.get(event["name"]), view)

    def _meta(self, type_id: str | None, view: ContextView) -> dict[str, Any]:
        """The shared, read-only meta of events of one type under one set of contexts."""
        meta: dict[str, Any] = {} if type_id is None else {"type": type_id}
        contexts = self.context_ids(view.names) if view.names else None
        if contexts:
            meta["contexts"] = contexts
        return meta

    def _problems(
        self,
        event: dict[str, Any],
        type_id: str | None,
        found: list[Problem],
        policy: Policy,
        view: ContextView,
    ) -> None:
        self._report(event["name"], found, policy)
        if self.annotate:
            event["meta"] = {**self._meta(type_id, view), "problems": found}

    def _check_slowly(
        self,
        event: dict[str, Any],
        entry: tuple[str, Any, Policy | None] | None,
        view: ContextView,
    ) -> None:
        found: list[Problem] | None = None
        if entry is None:
            type_id = None
            policy = self.policy
            if policy != "off" and self.registry._hot:
                found = [problem("unregistered", "name", "event type is not registered")]
        else:
            type_id, validator, override = entry
            policy = override or self.policy
            if policy != "off":
                found = validator(event["data"])
        if self.max_event_size is not None and policy != "off":
            size = len(dumps(event))
            if size > self.max_event_size:
                found = found or []
                found.append(
                    problem("too_large", "event", f"{size} bytes > max {self.max_event_size}")
                )
        if found:
            self._problems(event, type_id, found, policy, view)
        elif self.annotate:
            meta = self._meta(type_id, view)
            if meta:
                event["meta"] = meta

    def _report(self, name: str, found: list[Problem], policy: Policy) -> None:
        if policy == "strict":
            first = found[0]
            raise ValidationError(name, first["field"], first["rule"], first["detail"])
        for i, item in enumerate(found):
            self.counters.increment(f"validation.{item['rule']}")
            if i < MAX_LOGGED_PROBLEMS:
                diagnostics.warn_once(
                    (f"validation.{item['rule']}", name, item["field"]),
                    "event %r: %r: %s (%s); event kept",
                    name,
                    item["field"],
                    item["rule"],
                    item["detail"],
                )
        if len(found) > MAX_LOGGED_PROBLEMS:
            diagnostics.warn_once(
                ("validation.more", name),
                "event %r: %d more problem(s) not logged; see the validation.* counters",
                name,
                len(found) - MAX_LOGGED_PROBLEMS,
            )

    def check_context(self, name: str, ctx: Mapping[str, Any]) -> None:
        """Validate a context on entry against its documented type, if any."""
        version = self.registry.current(name, "context")
        if version is None or self.policy == "off":
            return
        validator = self.registry.validator(version.id)
        found = validator(ctx) if validator is not None else None
        if found:
            fixed = [
                {**p, "field": p["field"].replace("data.", f"context.{name}.", 1)} for p in found
            ]
            self._report(f"context {name}", fixed, self.policy)
