"""Write a tracking.log through the stock Open edX `tracking_logs` tree, in either implementation.

Run by tests/test_differential_logger.py twice, unchanged: once with the
original event-tracking 4.0.2 (build/upstream-venv) and once with ours
(.venv); the two logs must be byte-identical. It uses only what both
implementations offer: Django settings, `DjangoTracker`, the tracker's
context methods and `emit`.

    python tracking_log_corpus.py LOG CASES

LOG receives the `tracking` logger's lines ('%(message)s', UTF-8); CASES a
JSON document with, for each corpus entry, its label, the byte range of LOG
it wrote, and the exception `emit` raised into the caller, if any. Time is
frozen by patching `eventtracking.tracker.datetime`, as the original's own
tests do. Exit code 3: the time could not be frozen.
"""

from __future__ import annotations

import collections
import copy
import enum
import importlib
import json
import logging
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import django
from django.conf import settings
from openedx_standins import (
    COURSE,
    CRASH_NAME,
    DROPPED_NAME,
    REQUEST_CONTEXT,
    TRACK_MAX_EVENT,
    tracking_logs,
    tracking_logs_processors,
)

MODULE = "openedx_standins"  # the stand-ins' import name here (this script's folder is sys.path[0])
NOW = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
Case = Callable[[Any], None]
CASES: list[tuple[str, Case]] = []


def case(label: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES.append((label, function))
        return function

    return register


class Color(enum.IntEnum):
    RED = 1


class Mode(str, enum.Enum):  # noqa: UP042  (the pre-3.11 spelling, still common)
    AUDIT = "audit"


class Label(str):
    pass


Point = collections.namedtuple("Point", "x y")


@case("plain event")
def _plain(t: Any) -> None:
    t.emit("edx.course.enrollment.activated", {"course_id": COURSE, "user_id": 42, "mode": "audit"})


@case("module-level emit")
def _module_level(t: Any) -> None:
    from eventtracking import tracker

    tracker.emit("edx.module.level", {"via": "eventtracking.tracker.emit"})


@case("request context")
def _request(t: Any) -> None:
    with t.context("edx.request", REQUEST_CONTEXT):
        t.emit("edx.video.played", {"id": "v1", "currentTime": 12.5})


@case("nested contexts")
def _nested(t: Any) -> None:
    t.enter_context("outer", {"user_id": 1, "org_id": "edX", "course_id": "A"})
    t.enter_context("inner", {"user_id": 2, "module": {"usage_key": "block-v1:edX+a+b"}})
    t.emit("edx.nested", {"depth": 2})
    t.exit_context("inner")
    t.emit("edx.nested", {"depth": 1})
    with t.context("inner", {"course_id": "B", "extra": [1, 2]}):
        t.emit("edx.nested", {"depth": "2 again"})
    t.exit_context("outer")
    t.emit("edx.nested", {"depth": 0})


@case("context re-entered under the same name")
def _reentered(t: Any) -> None:
    t.enter_context("a", {"x": 1})
    t.enter_context("b", {"x": 2})
    t.enter_context("a", {"x": 3})  # replaces a's value, keeps a's place before b
    t.emit("edx.reentered", {})
    t.exit_context("b")
    t.exit_context("a")


@case("unicode")
def _unicode(t: Any) -> None:
    t.emit(
        "edx.ünïcødé.名前",
        {
            "title": "Événement — ünïcødé",
            "cjk": "中文字符",
            "rtl": "مرحبا",
            "clé": "valeur",
            "separators": "\u2028\u2029",
        },
    )


@case("emoji")
def _emoji(t: Any) -> None:
    t.emit("edx.emoji.🎉", {"🔑": "👩‍💻🏳️‍🌈", "astral": "\U0001f600", "flag": "🇫🇷"})


@case("escapes and control characters")
def _escapes(t: Any) -> None:
    t.emit("edx.escapes", {"s": 'quote " backslash \\ slash / newline \n tab \t nul \x00 del \x7f'})


@case("lone surrogate")
def _surrogate(t: Any) -> None:
    t.emit("edx.surrogate", {"s": "broken \ud800 pair"})


@case("datetimes with non-UTC offsets")
def _offsets(t: Any) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    pacific = timezone(timedelta(hours=-8))
    t.emit(
        "edx.datetimes",
        {
            "india": datetime(2024, 3, 1, 5, 29, 58, 500, tzinfo=india),
            "pacific": datetime(2023, 12, 31, 20, 0, tzinfo=pacific),
            "new_year": datetime(2000, 1, 1, 0, 30, tzinfo=india),
            "odd_offset": datetime(2024, 6, 1, 12, 0, tzinfo=timezone(timedelta(minutes=-37))),
            "utc": datetime(2024, 6, 1, 12, 0, 0, 1, tzinfo=UTC),
        },
    )


@case("naive datetimes")
def _naive(t: Any) -> None:
    t.emit(
        "edx.naive",
        {
            "naive": datetime(2024, 2, 29, 12, 0, 0, 999999),
            "whole_second": datetime(2024, 2, 29, 12, 0, 0),
            "max": datetime.max,
            "min": datetime.min,
        },
    )


@case("dates")
def _dates(t: Any) -> None:
    t.emit("edx.dates", {"leap": date(2024, 2, 29), "min": date.min, "list": [date(1999, 12, 31)]})


@case("datetime out of range after conversion to UTC")
def _out_of_range(t: Any) -> None:
    t.emit(
        "edx.datetime.overflow", {"when": datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))}
    )


@case("datetimes in context")
def _datetime_context(t: Any) -> None:
    with t.context(
        "dates", {"enrolled": datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2)))}
    ):
        t.emit("edx.datetime.context", {"today": date(2024, 1, 1)})


@case("Decimal in data")
def _decimal(t: Any) -> None:
    t.emit("edx.decimal", {"price": Decimal("19.90")})


@case("Decimal in context")
def _decimal_context(t: Any) -> None:
    with t.context("price", {"price": Decimal("1.10")}):
        t.emit("edx.decimal.context", {"ok": True})


@case("values json cannot encode")
def _unencodable(t: Any) -> None:
    for value in (
        {"tag"},
        b"bytes",
        uuid.UUID(int=1),
        object(),
        1 + 2j,
        time(12, 30),
        timedelta(seconds=5),
    ):
        t.emit("edx.unencodable", {"value": value})


@case("enums, subclasses and named tuples")
def _subclasses(t: Any) -> None:
    t.emit(
        "edx.subclasses",
        {
            "int_enum": Color.RED,
            "str_enum": Mode.AUDIT,
            "str_subclass": Label("label"),
            "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
            "default": collections.defaultdict(list, {"k": [1]}),
            "point": Point(1, 2),
            "bools": [True, False, None],
        },
    )


@case("floats")
def _floats(t: Any) -> None:
    t.emit(
        "edx.floats",
        {
            "sum": 0.1 + 0.2,
            "big": 1e16,
            "small": 1e-7,
            "negative_zero": -0.0,
            "one": 1.0,
            "tiny": 5e-324,
            "max": 1.7976931348623157e308,
            "long": 123456789.123456789,
        },
    )


@case("NaN and infinities")
def _nan(t: Any) -> None:
    t.emit("edx.nan", {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")})


@case("big ints")
def _big_ints(t: Any) -> None:
    t.emit("edx.big.ints", {"over_u64": 2**64 + 1, "negative": -(2**70), "huge": 10**40})


@case("nested lists and tuples")
def _nested_lists(t: Any) -> None:
    t.emit(
        "edx.nested.lists",
        {
            "matrix": [[1, 2], [3, [4, [5, []]]]],
            "tuple": (1, "two", 3.0),
            "empty": {},
            "none": None,
        },
    )


@case("non-string keys")
def _keys(t: Any) -> None:
    t.emit("edx.keys", {1: "int", 2.5: "float", None: "none", False: "bool"})


@case("tuple key")
def _tuple_key(t: Any) -> None:
    t.emit("edx.tuple.key", {(1, 2): "tuple"})


@case("key order kept")
def _key_order(t: Any) -> None:
    t.emit("edx.key.order", {"z": 1, "a": 2, "m": {"y": 1, "b": 2}})


@case("data shadowing envelope keys")
def _shadowing(t: Any) -> None:
    t.emit(
        "edx.shadow",
        {"name": "inner", "timestamp": datetime(2020, 1, 1), "context": {"user_id": -1}},
    )


@case("string data")
def _string_data(t: Any) -> None:
    t.emit("edx.browser.string", '{"browser": "sends strings"}')
    t.emit("edx.browser.plain", "input_abc_2_1=choice_1")


@case("list data")
def _list_data(t: Any) -> None:
    t.emit("edx.list.data", [1, "two", {"three": 3}])


@case("falsy data")
def _falsy_data(t: Any) -> None:
    for data in ("", None, [], 0, False, {}):
        t.emit("edx.falsy.data", data)


@case("data omitted")
def _no_data(t: Any) -> None:
    t.emit("edx.no.data")


@case("None name")
def _none_name(t: Any) -> None:
    t.emit(None, {"name": "none"})


@case("empty-string name")
def _empty_name(t: Any) -> None:
    t.emit("", {"name": "empty"})


@case("name and data omitted")
def _nothing(t: Any) -> None:
    t.emit()


@case("non-string names")
def _odd_names(t: Any) -> None:
    for name in (12345, 1.5, True, ["edx", "list"], ("edx", "tuple"), {"edx": "dict"}):
        t.emit(name, {"kind": type(name).__name__})


@case("falsy names")
def _falsy_names(t: Any) -> None:
    for name in (0, False, [], {}):
        t.emit(name, {"kind": type(name).__name__})


@case("dropped by a processor")
def _dropped(t: Any) -> None:
    t.emit(DROPPED_NAME, {"never": "logged"})


@case("processor fails half way")
def _crash(t: Any) -> None:
    t.emit(CRASH_NAME, {"still": "logged"})


@case("oversize event")
def _oversize(t: Any) -> None:
    t.emit("edx.oversize", {"blob": "x" * 60000})


def logged_length(name: str, data: dict[str, Any], context: dict[str, Any]) -> int:
    """The length of the tracking.log line for this event, computed with json alone.

    Runs the branch's stand-in processors on the event the original builds,
    so the size-limit entries are the same events in both implementations.
    """
    event: dict[str, Any] = {
        "name": name,
        "timestamp": NOW,
        "data": copy.deepcopy(data),
        "context": copy.deepcopy(context),
    }
    for config in tracking_logs_processors(MODULE):
        module_name, _, class_name = config["ENGINE"].rpartition(".")
        processor = getattr(importlib.import_module(module_name), class_name)(
            **config.get("OPTIONS", {})
        )
        changed = processor(event)
        event = event if changed is None else changed
    return len(json.dumps(event, default=lambda value: value.isoformat()))


def emit_sized(t: Any, name: str, size: int, filler: str) -> None:
    """Emit an event whose tracking.log line is exactly `size` characters long."""
    context = {"case": name}
    pad = size - logged_length(name, {"blob": ""}, context)
    escaped = len(json.dumps(filler)) - 2  # characters `filler` takes in the line
    count = pad // (2 * escaped)
    blob = filler * count + "x" * (pad - escaped * count)
    assert logged_length(name, {"blob": blob}, context) == size
    with t.context("size", context):
        t.emit(name, {"blob": blob})


@case("exactly at max_event_size")
def _at_limit(t: Any) -> None:
    emit_sized(t, "edx.size.at.limit", TRACK_MAX_EVENT, "x")


@case("one character over max_event_size")
def _over_limit(t: Any) -> None:
    emit_sized(t, "edx.size.over.limit", TRACK_MAX_EVENT + 1, "x")


@case("at max_event_size with non-ASCII escapes")
def _at_limit_escaped(t: Any) -> None:
    emit_sized(t, "edx.size.escaped", TRACK_MAX_EVENT, "é")


@case("over max_event_size by its escapes only")
def _over_escaped(t: Any) -> None:
    # 8,400 characters of text, but 50,400 once escaped: over the limit.
    t.emit("edx.size.escaped.over", {"blob": "é" * 8400})


def configure_django() -> None:
    settings.configure(
        SECRET_KEY="tracking-log-corpus",
        USE_TZ=True,
        INSTALLED_APPS=["eventtracking.django"],
        DATABASES={},
        LOGGING_CONFIG=None,
        EVENT_TRACKING_ENABLED=True,
        EVENT_TRACKING_BACKENDS={"tracking_logs": tracking_logs(MODULE)},
        EVENT_TRACKING_PROCESSORS=[],
    )
    django.setup()


def implementation() -> dict[str, str]:
    import eventtracking

    try:
        from importlib.metadata import version

        release = version("event-tracking")
    except Exception as exc:
        release = f"unknown ({exc!r})"
    return {"version": release, "path": str(Path(eventtracking.__file__).parent)}


def main(log_path: str, cases_path: str) -> int:
    configure_django()
    from eventtracking import tracker
    from eventtracking.django.django_tracker import DjangoTracker

    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    tracking = logging.getLogger("tracking")
    tracking.handlers[:] = [handler]
    tracking.setLevel(logging.INFO)
    tracking.propagate = False

    t = DjangoTracker()
    tracker.register_tracker(t)
    try:
        clock = mock.patch("eventtracking.tracker.datetime")
        frozen = clock.start()
    except AttributeError as exc:
        print(f"cannot freeze time for emit: {exc}", file=sys.stderr)
        return 3
    frozen.now.return_value = NOW

    results = []
    for label, function in CASES:
        start = handler.stream.tell()
        raised = None
        try:
            function(t)
        except Exception as exc:  # the original raises nothing into the caller here
            raised = f"{type(exc).__name__}: {exc}"
        handler.flush()
        results.append(
            {"label": label, "start": start, "end": handler.stream.tell(), "raised": raised}
        )
    clock.stop()
    handler.close()
    document = {"implementation": implementation(), "cases": results}
    Path(cases_path).write_text(json.dumps(document, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
