"""Tests for LoggerBackend and DateTimeJSONEncoder."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from eventtracking import diagnostics
from eventtracking.backends.logger import MAX_EVENT_SIZE, DateTimeJSONEncoder, LoggerBackend
from eventtracking.backends.logger import dumps_openedx as dumps_str  # the text logged
from eventtracking.tracker import Tracker

LOGGER_NAME = "test.eventtracking.events"
SECRET = "s3cr3t-payload-"


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    diagnostics.reset()
    yield
    diagnostics.reset()


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # set_level also lowers caplog's handler, so the lowest level goes last.
    caplog.set_level(logging.WARNING, logger="eventtracking")
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    yield caplog


def event_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME]


def internal_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "eventtracking"]


def make_event(name: str = "edx.test", data: Any = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "0190a0b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b",
        "name": name,
        "timestamp": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "data": {} if data is None else data,
        "context": {"user_id": 10938, "course_id": "course-v1:edX+DemoX+Demo"},
    }
    event.update(extra)
    return event


def big_event(name: str = "edx.big", size: int = 2_000) -> dict[str, Any]:
    return make_event(name, {"blob": (SECRET * (size // len(SECRET) + 1))[:size]})


# -- normal logging -------------------------------------------------------------


class TestLogging:
    def test_logs_one_json_line_at_info_by_default(self, records: pytest.LogCaptureFixture) -> None:
        backend = LoggerBackend(name=LOGGER_NAME)
        event = make_event(data={"url": "http://www.edx.org/some/path/1"})
        backend.send(event)
        (record,) = event_lines(records)
        assert record.levelno == logging.INFO
        assert json.loads(record.getMessage()) == {
            "id": event["id"],
            "name": "edx.test",
            "timestamp": "2024-05-06T07:08:09.123456+00:00",
            "data": {"url": "http://www.edx.org/some/path/1"},
            "context": {"user_id": 10938, "course_id": "course-v1:edX+DemoX+Demo"},
        }

    @pytest.mark.parametrize(
        ("level", "levelno"),
        [
            ("debug", logging.DEBUG),
            ("info", logging.INFO),
            ("warning", logging.WARNING),
            ("ERROR", logging.ERROR),
            ("Critical", logging.CRITICAL),
        ],
    )
    def test_configured_level(
        self, records: pytest.LogCaptureFixture, level: str, levelno: int
    ) -> None:
        LoggerBackend(name=LOGGER_NAME, level=level).send(make_event())
        (record,) = event_lines(records)
        assert record.levelno == levelno

    def test_logs_to_the_named_logger_only(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        LoggerBackend(name="tracking.a").send(make_event("first"))
        LoggerBackend(name="tracking.b").send(make_event("second"))
        by_logger = {r.name: json.loads(r.getMessage())["name"] for r in caplog.records}
        assert by_logger == {"tracking.a": "first", "tracking.b": "second"}

    def test_works_with_a_handler_attached_directly(self) -> None:
        seen: list[str] = []

        class ListHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        logger = logging.getLogger("test.eventtracking.handler")
        handler = ListHandler()
        logger.addHandler(handler)
        old_level, old_propagate = logger.level, logger.propagate
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            LoggerBackend(name=logger.name).send(make_event("via.handler"))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = old_propagate
        assert [json.loads(line)["name"] for line in seen] == ["via.handler"]

    def test_nothing_logged_when_logger_level_is_above(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger=LOGGER_NAME)
        LoggerBackend(name=LOGGER_NAME, level="info").send(make_event())
        assert event_lines(caplog) == []

    def test_naive_datetimes_are_encoded_as_utc(self, records: pytest.LogCaptureFixture) -> None:
        event = make_event(
            data={"at": datetime(2020, 1, 2, 3, 4, 5), "day": date(2020, 1, 2)},
            timestamp=datetime(2021, 6, 7, 8, 9, 10),
        )
        LoggerBackend(name=LOGGER_NAME).send(event)
        logged = json.loads(event_lines(records)[0].getMessage())
        assert logged["timestamp"] == "2021-06-07T08:09:10+00:00"
        assert logged["data"] == {"at": "2020-01-02T03:04:05+00:00", "day": "2020-01-02"}

    def test_does_not_modify_the_event(self, records: pytest.LogCaptureFixture) -> None:
        event = big_event(size=500)
        before = repr(event)
        LoggerBackend(name=LOGGER_NAME, max_event_size=100, oversize="truncate").send(event)
        LoggerBackend(name=LOGGER_NAME).send(event)
        assert repr(event) == before

    def test_default_max_event_size_is_openedx_1024(self) -> None:
        assert LoggerBackend().max_event_size == MAX_EVENT_SIZE == 1024

    def test_event_exactly_at_the_limit_is_logged(self, records: pytest.LogCaptureFixture) -> None:
        event = make_event(data={"x": ""})
        size = len(dumps_str(event))
        LoggerBackend(name=LOGGER_NAME, max_event_size=size).send(event)
        assert len(event_lines(records)) == 1
        LoggerBackend(name=LOGGER_NAME, max_event_size=size - 1).send(event)
        assert len(event_lines(records)) == 1

    def test_no_limit_logs_anything(self, records: pytest.LogCaptureFixture) -> None:
        event = big_event(size=100_000)
        LoggerBackend(name=LOGGER_NAME, max_event_size=None).send(event)
        (record,) = event_lines(records)
        assert json.loads(record.getMessage())["data"] == event["data"]

    def test_unknown_options_are_accepted(self) -> None:
        # Open edX settings may pass options this backend does not use.
        backend = LoggerBackend(name=LOGGER_NAME, some_future_option=True)
        assert backend.event_logger.name == LOGGER_NAME

    def test_inside_a_tracker(self, records: pytest.LogCaptureFixture) -> None:
        tracker = Tracker({"tracking_logs": LoggerBackend(name=LOGGER_NAME)})
        with tracker.context("outer", {"user_id": 10938}):
            tracker.emit("navigation.request", {"url": "http://www.edx.org/some/path/2"})
        logged = json.loads(event_lines(records)[0].getMessage())
        assert logged["name"] == "navigation.request"
        assert logged["context"] == {"user_id": 10938}
        assert logged["timestamp"].endswith("+00:00")


# -- oversize events --------------------------------------------------------------


class TestOversizeDrop:
    def test_oversize_event_is_not_logged_and_is_counted(
        self, records: pytest.LogCaptureFixture
    ) -> None:
        backend = LoggerBackend(name=LOGGER_NAME, max_event_size=200)
        backend.send(big_event())
        assert event_lines(records) == []
        assert diagnostics.snapshot()["logger.oversize_dropped"] == 1

    def test_warning_names_event_and_size_without_payload(
        self, records: pytest.LogCaptureFixture
    ) -> None:
        event = big_event("edx.video.transcript")
        size = len(dumps_str(event))
        LoggerBackend(name=LOGGER_NAME, max_event_size=200).send(event)
        (warning,) = internal_warnings(records)
        assert "edx.video.transcript" in warning
        assert str(size) in warning
        assert "200" in warning
        assert SECRET not in warning
        assert SECRET not in records.text

    def test_warned_once_per_event_name_but_always_counted(
        self, records: pytest.LogCaptureFixture
    ) -> None:
        backend = LoggerBackend(name=LOGGER_NAME, max_event_size=200)
        for _ in range(5):
            backend.send(big_event("edx.a"))
        backend.send(big_event("edx.b"))
        backend.send(big_event("edx.b"))
        warnings = internal_warnings(records)
        assert len(warnings) == 2
        assert "edx.a" in warnings[0]
        assert "edx.b" in warnings[1]
        assert diagnostics.snapshot()["logger.oversize_dropped"] == 7
        assert event_lines(records) == []

    def test_small_events_still_logged_between_big_ones(
        self, records: pytest.LogCaptureFixture
    ) -> None:
        backend = LoggerBackend(name=LOGGER_NAME, max_event_size=300)
        backend.send(big_event())
        backend.send(make_event("small"))
        assert [json.loads(r.getMessage())["name"] for r in event_lines(records)] == ["small"]
        assert diagnostics.snapshot()["logger.oversize_dropped"] == 1

    def test_disabled_level_does_not_count(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.ERROR, logger=LOGGER_NAME)
        LoggerBackend(name=LOGGER_NAME, max_event_size=100).send(big_event())
        assert "logger.oversize_dropped" not in diagnostics.snapshot()


class TestOversizeTruncate:
    @pytest.mark.parametrize("limit", [300, 301, 350, 500, 1024])
    def test_truncated_line_is_valid_json_within_limit(
        self, records: pytest.LogCaptureFixture, limit: int
    ) -> None:
        event = big_event(size=5_000)
        original = len(dumps_str(event))
        LoggerBackend(name=LOGGER_NAME, max_event_size=limit, oversize="truncate").send(event)
        (record,) = event_lines(records)
        text = record.getMessage()
        assert len(text) <= limit
        logged = json.loads(text)
        assert isinstance(logged, dict)
        assert logged["name"] == event["name"]
        assert logged["id"] == event["id"]
        assert logged["context"] == event["context"]
        assert logged["data"]["_truncated"] is True
        assert logged["data"]["_original_size"] == original
        assert diagnostics.snapshot()["logger.oversize_truncated"] == 1
        assert "logger.oversize_dropped" not in diagnostics.snapshot()

    def test_prefix_is_the_start_of_the_data_json(self, records: pytest.LogCaptureFixture) -> None:
        event = big_event(size=3_000)
        LoggerBackend(name=LOGGER_NAME, max_event_size=600, oversize="truncate").send(event)
        prefix = json.loads(event_lines(records)[0].getMessage())["data"]["_prefix"]
        assert prefix
        assert dumps_str(event["data"]).startswith(prefix)

    @pytest.mark.parametrize("char", ['"', "\\", "\x01", "é", "\u2028", "😀"])
    def test_escape_heavy_data_still_fits(
        self, records: pytest.LogCaptureFixture, char: str
    ) -> None:
        event = make_event("edx.escapes", {"text": char * 3_000, "n": 1})
        LoggerBackend(name=LOGGER_NAME, max_event_size=400, oversize="truncate").send(event)
        text = event_lines(records)[0].getMessage()
        assert len(text) <= 400
        assert json.loads(text)["data"]["_truncated"] is True

    def test_huge_context_keeps_only_identity(self, records: pytest.LogCaptureFixture) -> None:
        event = make_event("edx.ctx", {"a": 1}, context={"big": "c" * 5_000})
        LoggerBackend(name=LOGGER_NAME, max_event_size=300, oversize="truncate").send(event)
        text = event_lines(records)[0].getMessage()
        assert len(text) <= 300
        logged = json.loads(text)
        assert logged["name"] == "edx.ctx"
        assert logged["id"] == event["id"]
        assert logged["context"] == {}
        assert logged["data"] == {"_truncated": True, "_original_size": len(dumps_str(event))}

    def test_identity_too_big_for_the_limit_is_dropped_and_counted(
        self, records: pytest.LogCaptureFixture
    ) -> None:
        # id + name + timestamp + marker alone exceed 100 characters.
        event = make_event("edx.tiny.limit", {"x": "y" * 500})
        LoggerBackend(name=LOGGER_NAME, max_event_size=100, oversize="truncate").send(event)
        assert event_lines(records) == []
        assert diagnostics.snapshot()["logger.oversize_dropped"] == 1
        (warning,) = internal_warnings(records)
        assert "edx.tiny.limit" in warning
        assert "y" * 20 not in warning

    def test_warned_once_per_name_without_payload(self, records: pytest.LogCaptureFixture) -> None:
        backend = LoggerBackend(name=LOGGER_NAME, max_event_size=300, oversize="truncate")
        for _ in range(3):
            backend.send(big_event("edx.t"))
        warnings = internal_warnings(records)
        assert len(warnings) == 1
        assert "edx.t" in warnings[0]
        assert "truncated" in warnings[0]
        assert SECRET not in warnings[0]
        assert len(event_lines(records)) == 3
        assert diagnostics.snapshot()["logger.oversize_truncated"] == 3


# -- constructor validation ---------------------------------------------------------


class TestValidation:
    @pytest.mark.parametrize("level", ["verbose", "", "INFO ", 20, None, "handle"])
    def test_bad_level(self, level: Any) -> None:
        with pytest.raises(ValueError, match="level"):
            LoggerBackend(level=level)

    @pytest.mark.parametrize("size", ["1024", 1.5, True, [1024]])
    def test_bad_max_event_size(self, size: Any) -> None:
        with pytest.raises(ValueError, match="max_event_size"):
            LoggerBackend(max_event_size=size)

    @pytest.mark.parametrize("oversize", ["truncated", "DROP", "", None, "log"])
    def test_bad_oversize(self, oversize: Any) -> None:
        with pytest.raises(ValueError, match="oversize"):
            LoggerBackend(oversize=oversize)

    @pytest.mark.parametrize("size", [0, -1, 10, 64])
    def test_any_int_is_a_size_as_in_open_edx(self, size: int) -> None:
        backend = LoggerBackend(max_event_size=size)
        assert backend.max_event_size == size


# -- DateTimeJSONEncoder ------------------------------------------------------------


class TestDateTimeJSONEncoder:
    def test_naive_datetime_is_utc(self) -> None:
        text = json.dumps({"t": datetime(2013, 10, 2, 12, 30, 1)}, cls=DateTimeJSONEncoder)
        assert json.loads(text) == {"t": "2013-10-02T12:30:01+00:00"}

    def test_aware_utc_datetime(self) -> None:
        value = datetime(2013, 10, 2, 12, 30, 1, 500, tzinfo=UTC)
        assert json.dumps(value, cls=DateTimeJSONEncoder) == '"2013-10-02T12:30:01.000500+00:00"'

    def test_aware_non_utc_datetime_is_converted_to_utc(self) -> None:
        value = datetime(2013, 10, 2, 14, 30, 1, tzinfo=timezone(timedelta(hours=2)))
        assert json.dumps(value, cls=DateTimeJSONEncoder) == '"2013-10-02T12:30:01+00:00"'

    def test_date(self) -> None:
        assert json.dumps([date(2013, 10, 2)], cls=DateTimeJSONEncoder) == '["2013-10-02"]'

    def test_nested_and_plain_values(self) -> None:
        value = {"a": [1, "x", {"when": datetime(2000, 1, 1)}], "b": None}
        assert json.loads(json.dumps(value, cls=DateTimeJSONEncoder)) == {
            "a": [1, "x", {"when": "2000-01-01T00:00:00+00:00"}],
            "b": None,
        }

    def test_other_types_still_raise(self) -> None:
        with pytest.raises(TypeError):
            json.dumps({"s": {1, 2}}, cls=DateTimeJSONEncoder)


def test_unknown_options_are_accepted_but_named_once(caplog: pytest.LogCaptureFixture) -> None:
    # Open edX passes options through, so they are not an error; a typo still shows.
    with caplog.at_level(logging.WARNING, logger="eventtracking"):
        LoggerBackend(name="tracking", max_event_sise=2048)
        LoggerBackend(name="tracking", max_event_sise=2048)
    warnings = [r.getMessage() for r in caplog.records if "max_event_sise" in r.getMessage()]
    assert len(warnings) == 1
    assert "known: name, level, max_event_size, oversize" in warnings[0]


def test_records_name_the_backend_as_their_source_and_keep_percent_signs(
    records: pytest.LogCaptureFixture,
) -> None:
    backend = LoggerBackend(name=LOGGER_NAME, level="warning")
    Tracker({"log": backend}).emit("page.viewed", {"url": "/a?x=100%25&y=%s"})
    (record,) = event_lines(records)
    assert record.levelno == logging.WARNING
    assert record.module == "logger" and record.funcName == "_log_direct"
    assert record.pathname.endswith("eventtracking/backends/logger.py")
    assert json.loads(record.getMessage())["data"]["url"] == "/a?x=100%25&y=%s"


def test_a_custom_record_factory_and_logger_filters_still_apply(
    records: pytest.LogCaptureFixture,
) -> None:
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.tenant = "t1"
        return record

    logger = logging.getLogger(LOGGER_NAME)
    drop_secret = logging.Filter()
    drop_secret.filter = lambda r: SECRET not in r.getMessage()  # type: ignore[method-assign]
    logging.setLogRecordFactory(factory)
    logger.addFilter(drop_secret)
    try:
        tracker = Tracker({"log": LoggerBackend(name=LOGGER_NAME)})
        tracker.emit("kept", {})
        tracker.emit("filtered", {"token": SECRET})
    finally:
        logging.setLogRecordFactory(previous)
        logger.removeFilter(drop_secret)
    lines = event_lines(records)
    assert [json.loads(r.getMessage())["name"] for r in lines] == ["kept"]
    assert lines[0].tenant == "t1"  # type: ignore[attr-defined]
