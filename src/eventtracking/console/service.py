"""The console, independent of any web framework: requests in, `Reply` objects out.

`Console` owns a reading connection to the store, the live feed and where to
look for delivery health. The ASGI app (`app.py`) and the Django views
(`eventtracking.django.console`) only translate requests and replies, so
both serve the same pages and the same JSON.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final

import orjson

from ..catalog.build import Catalogue, build_catalogue
from ..exceptions import ImproperlyConfigured, StoreError
from ..registry.registry import Registry
from ..store import EventStore
from . import charts, pages
from .filters import Filter, FilterError, parse_filter
from .health import HealthSource, replay
from .live import LiveFeed
from .sql import dialect_for
from .stream import Describer, sse_blocking, sse_chunk

Params = Mapping[str, list[str]]
HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"
CACHE_SECONDS: Final = 15.0  # the catalogue and store gauges: whole-store aggregates
STATIC: Final = {"console.js": "text/javascript", "console.css": "text/css"}
# The live view's history is looked for in growing windows before the newest
# event, so the usual case reads one hour of the time index, not the store.
HISTORY_WINDOWS: Final = (timedelta(hours=1), timedelta(days=1), timedelta(days=7), None)


@dataclass
class Reply:
    """What to answer: status, content type, body and extra headers."""

    status: int
    body: bytes
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)


def _first(params: Params, key: str, default: str = "") -> str:
    values = params.get(key) or [default]
    return values[0]


def _html(status: int, text: str) -> Reply:
    return Reply(status, text.encode())


def _json(value: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(value, default=str), JSON)


class Console:
    """The console over one store (see module docs); thread-safe.

    `store_label` is what the pages show as the store's name (never a
    password: give a URL without one). `replay_backend(letter_backend)`
    returns where a dead letter is re-delivered; None keeps replay off.
    `registry` adds documentation registered in code to the catalogue.
    """

    def __init__(
        self,
        store: EventStore,
        open_store: Callable[[], EventStore],
        *,
        store_label: str,
        health: HealthSource,
        replay_backend: Callable[[str], tuple[Any, bool]] | None = None,
        registry: Callable[[], Registry | None] | None = None,
        feed_capacity: int = 2000,
        stream_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.dialect = dialect_for(store)
        self.label = store_label
        self.health = health
        self.replay_backend = replay_backend
        self.registry = registry
        self.stream_seconds = stream_seconds
        self.feed = LiveFeed(open_store, capacity=feed_capacity)
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_lock = threading.Lock()
        self.describer = Describer(store.metadata)  # type: ignore[attr-defined]

    @property
    def allow_replay(self) -> bool:
        """True when dead letters may be re-delivered from the pages."""
        return self.replay_backend is not None

    def start(self) -> None:
        """Start the live feed."""
        self.feed.start()

    def close(self) -> None:
        """Stop the feed and close the store; idempotent."""
        self.feed.close()
        self.store.close()

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
                return hit[1]
        value = make()
        with self._cache_lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def _error(self, base: str, status: int, message: str, as_json: bool) -> Reply:
        if as_json:
            return _json({"error": message}, status)
        return _html(status, pages.error_page(base, status, message, self.label))

    def _filter(self, params: Params) -> Filter:
        return parse_filter(params.get("name", []), params.get("where", []))

    def _guard(self, base: str, as_json: bool, make: Callable[[], Reply]) -> Reply:
        try:
            return make()
        except FilterError as exc:
            return self._error(base, 400, str(exc), as_json)
        except StoreError as exc:
            return self._error(base, 503, str(exc), as_json)

    # -- live -----------------------------------------------------------------------------

    def live(self, base: str, params: Params) -> Reply:
        """The live page (an unusable filter is shown, with everything listed)."""
        try:
            selected = self._filter(params)
            notice = self.feed.error or ""
        except FilterError as exc:
            selected, notice = Filter(), str(exc)
        return _html(200, pages.live_page(base, selected, self.label, notice))

    def events(self, base: str, params: Params) -> Reply:
        """JSON: the newest matching events (history for the live view) and the feed position."""

        def make() -> Reply:
            selected = self._filter(params)
            try:
                limit = max(1, min(500, int(_first(params, "limit", "100"))))
            except ValueError:
                raise FilterError("limit must be a whole number") from None
            position = self.feed.position
            found = self._history(selected, limit)
            return _json(
                {
                    "position": position,
                    "events": [self.describer.item(event) for event in found],
                    "error": self.feed.error,
                }
            )

        return self._guard(base, True, make)

    def _history(self, selected: Filter, limit: int) -> list[dict[str, Any]]:
        span = self.store.time_range()
        if span is None:
            return []
        for back in HISTORY_WINDOWS:
            since = None if back is None else span[1] - back
            found = self.store.query(selected.query(since=since, limit=limit, newest_first=True))
            if len(found) >= limit:
                break
        return found

    def stream_start(self, params: Params, last_event_id: str | None) -> tuple[Filter, int]:
        """The filter and starting position of an event stream (FilterError if unusable)."""
        selected = self._filter(params)
        start = last_event_id or _first(params, "after")
        try:
            position = int(start) if start else self.feed.position
        except ValueError:
            raise FilterError("after must be a feed position (a whole number)") from None
        # A position beyond the feed's was given by an earlier console process: start now.
        return selected, min(position, self.feed.position)

    def stream_chunk(self, selected: Filter, position: int) -> tuple[str, int]:
        """The server-sent-event text for what arrived after `position`, and the new position."""
        return sse_chunk(self.feed, self.describer, selected, position)

    def stream(self, selected: Filter, position: int) -> Iterator[str]:
        """A blocking event stream for `stream_seconds` (then the browser reconnects)."""
        return sse_blocking(self.feed, self.describer, selected, position, self.stream_seconds)

    # -- charts and catalogue -----------------------------------------------------------

    def _chart_data(self, params: Params) -> dict[str, Any]:
        selected = self._filter(params)
        span = self.store.time_range()
        window = charts.choose_window(
            _first(params, "range") or None,
            _first(params, "bucket") or None,
            span[1] if span else None,
            datetime.now(UTC),
        )
        section, key = charts.parse_field_name(_first(params, "field") or None)
        return {
            "filter": selected,
            "window": window,
            "series": charts.series(self.dialect, selected, window),
            "types": charts.top_types(self.store, selected, window),
            "field": f"{section}.{key}",
            "values": charts.top_values(self.dialect, selected, window, section, key),
        }

    def charts(self, base: str, params: Params) -> Reply:
        """The charts page."""

        def make() -> Reply:
            d = self._chart_data(params)
            return _html(
                200,
                pages.charts_page(
                    base,
                    d["filter"],
                    d["window"],
                    d["series"],
                    d["types"],
                    d["field"],
                    d["values"],
                    self.label,
                ),
            )

        return self._guard(base, False, make)

    def charts_json(self, base: str, params: Params) -> Reply:
        """The charts' numbers as JSON."""

        def make() -> Reply:
            d = self._chart_data(params)
            return _json(
                {
                    **d["series"].to_json(),
                    "top_types": d["types"],
                    "field": d["field"],
                    "top_values": d["values"],
                }
            )

        return self._guard(base, True, make)

    def catalogue_data(self) -> tuple[Catalogue, dict[str, list[int]]]:
        """The catalogue and each type's 24 hourly counts (cached for `CACHE_SECONDS`)."""

        def make() -> tuple[Catalogue, dict[str, list[int]]]:
            registry = self.registry() if self.registry else None
            catalogue = build_catalogue(registry, self.store)  # type: ignore[arg-type]
            span = self.store.time_range()
            return catalogue, charts.sparklines(self.dialect, span[1] if span else None)

        result: tuple[Catalogue, dict[str, list[int]]] = self._cached("catalogue", make)
        return result

    def catalogue(self, base: str, params: Params) -> Reply:
        """The catalogue page."""

        def make() -> Reply:
            catalogue, sparks = self.catalogue_data()
            return _html(200, pages.catalogue_page(base, catalogue, sparks, self.label))

        return self._guard(base, False, make)

    # -- delivery -------------------------------------------------------------------------

    def delivery(self, base: str, params: Params, csrf_input: str = "", notice: str = "") -> Reply:
        """The delivery-health page."""

        def make() -> Reply:
            health = self.health.report()
            letters = self.health.letters(health)
            return _html(
                200,
                pages.delivery_page(
                    base, health, letters, self.allow_replay, self.label, csrf_input, notice
                ),
            )

        return self._guard(base, False, make)

    def replay(self, base: str, form: Params, csrf_input: str = "") -> Reply:
        """Re-deliver the dead letters named in `form` (403 unless replay is allowed)."""
        if self.replay_backend is None:
            return self._error(
                base,
                403,
                "the console is read-only; replay needs serve --allow-replay "
                "(Django: ALLOW_REPLAY)",
                False,
            )
        path = _first(form, "store")
        known = self.health.report().dead
        if path not in known:
            return self._error(base, 400, f"no dead-letter store {path!r} is shown here", False)
        try:
            ids = [int(value) for value in form.get("id", [])]
        except ValueError:
            return self._error(base, 400, "id must be a dead letter's number", False)
        sent = failed = 0
        for backend_name in sorted(known[path]):
            try:
                target, close = self.replay_backend(backend_name)
                ok, bad = replay(path, ids or None, target, close=close, backend=backend_name)
            except (ImproperlyConfigured, StoreError, OSError) as exc:
                return self._error(base, 503, f"replay failed: {exc}", False)
            sent, failed = sent + ok, failed + bad
        notice = f"replayed: {sent} delivered, {failed} failed again"
        return self.delivery(base, {}, csrf_input, notice)

    # -- metrics and files ----------------------------------------------------------------

    def store_counts(self) -> tuple[list[tuple[str, int]], datetime | None]:
        """Events per name and the newest event's time (cached for `CACHE_SECONDS`)."""

        def make() -> tuple[list[tuple[str, int]], datetime | None]:
            span = self.store.time_range()
            return self.store.counts_by_name(), span[1] if span else None

        result: tuple[list[tuple[str, int]], datetime | None] = self._cached("counts", make)
        return result

    def metrics(self) -> Reply:
        """The Prometheus text exposition."""
        from .prom import CONTENT_TYPE, exposition

        try:
            body = exposition(self.health.report, self.store_counts)
        except StoreError as exc:
            return Reply(503, f"# {exc}\n".encode(), "text/plain; charset=utf-8")
        return Reply(200, body, CONTENT_TYPE)

    @staticmethod
    def static(name: str) -> Reply:
        """One of the console's own files (404 for anything else)."""
        if name not in STATIC:
            return Reply(404, b"not found", "text/plain")
        body = resources.files("eventtracking.console").joinpath("static", name).read_bytes()
        return Reply(200, body, STATIC[name] + "; charset=utf-8", {"Cache-Control": "no-cache"})
