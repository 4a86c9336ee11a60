"""Log lines that outside input cannot forge, and warnings with a budget per kind."""

from __future__ import annotations

import logging

import pytest

from eventtracking import diagnostics
from eventtracking.logsafe import MAX_MESSAGE, escape, safe_logger, without_password
from eventtracking.tracker import Tracker

HOSTILE = ("\n2099-01-01 00:00:00 CRITICAL django.security forged", "\r", "\x1b[2J", "\x00")


def lines_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record formatted as a handler would (message and traceback)."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return [formatter.format(record) for record in caplog.records]


def assert_clean(text: str) -> None:
    for bad in ("\r", "\x1b", "\x00", "\u2028"):
        assert bad not in text, repr(text)
    for line in text.split("\n"):
        assert not line.startswith("2099"), repr(text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\rb", "a\\rb"),
        ("\x1b[31m", "\\x1b[31m"),
        ("nul\x00", "nul\\x00"),
        ("tab\t", "tab\\t"),
        ("\x85\u2028\u202e", "\\x85\\u2028\\u202e"),
        ("plain é ü 中", "plain é ü 中"),
    ],
)
def test_escape_makes_control_characters_visible(raw: str, shown: str) -> None:
    assert escape(raw) == shown


def test_escape_bounds_the_length() -> None:
    text = escape("x" * (MAX_MESSAGE + 10))
    assert text.startswith("x" * MAX_MESSAGE)
    assert text.endswith("...(10 more characters)")


@pytest.mark.parametrize("bad", HOSTILE)
def test_library_warnings_stay_on_one_line(caplog: pytest.LogCaptureFixture, bad: str) -> None:
    caplog.set_level(logging.WARNING)
    diagnostics.warn_once(("x", bad), "event %r: field %s: %s", bad, bad, bad)
    diagnostics.log_burst(f"y:{bad}", "plain %s", bad)
    try:
        raise ValueError(f"message {bad} end")
    except ValueError:
        diagnostics.log_burst("z", "failed for %s", bad)
        safe_logger("eventtracking.test").exception("module logger %s", bad)
    lines = lines_of(caplog)
    assert len(lines) == 4
    for text in lines:
        assert_clean(text)
    assert "Traceback (most recent call last):" in lines[2]  # frames keep their lines


@pytest.mark.parametrize("bad", HOSTILE)
def test_validation_warnings_escape_names_fields_and_values(
    caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    caplog.set_level(logging.WARNING)
    tracker = Tracker(validation="warn")
    tracker.register(f"doc{bad}", "D.", {"e": {"enum": ["a"]}, "n": {"type": "integer"}})
    tracker.register_context(f"ctx{bad}", "C.", {"k": {"type": "integer"}})
    tracker.emit(f"doc{bad}", {f"f{bad}": 1, "e": bad, "n": bad, "o": {f"k{bad}": object()}})
    tracker.emit(f"unregistered{bad}", {})
    tracker.enter_context(f"ctx{bad}", {"k": bad, f"x{bad}": 1})
    assert len(caplog.records) >= 5
    for text in lines_of(caplog):
        assert_clean(text)


def test_each_kind_of_warning_has_a_budget_and_counts_what_it_suppressed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING)
    clock = [1000.0]
    monkeypatch.setattr(diagnostics.time, "monotonic", lambda: clock[0])
    for i in range(diagnostics.WARN_BUDGET + 30):
        diagnostics.warn_once(("flood", str(i)), "flood %d", i)
    diagnostics.warn_once(("other", "1"), "another kind still logs")
    assert len(caplog.records) == diagnostics.WARN_BUDGET + 1
    assert diagnostics.snapshot()["diagnostics.suppressed.flood"] == 30
    caplog.clear()
    clock[0] += diagnostics.WARN_WINDOW
    diagnostics.warn_once(("flood", "late"), "flood late")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("30 more 'flood' warning(s) suppressed")
    assert messages[1] == "flood late"


def test_one_request_full_of_unknown_fields_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tracker = Tracker(validation="warn")
    tracker.register("client.doc", "D.", {"a": "A."})
    for burst in range(20):
        tracker.emit("client.doc", {f"f{burst}_{i}": i for i in range(500)})
        tracker.emit(f"client.unregistered{burst}", {})
    assert len(caplog.records) <= 3 * diagnostics.WARN_BUDGET
    counters = diagnostics.snapshot()
    assert counters["validation.unknown_field"] == 20 * 500  # the counters keep everything
    assert counters["validation.unregistered"] == 20


def test_a_clean_record_keeps_its_template(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log = safe_logger("eventtracking.test.template")
    log.info('Unable to send edx event "%s" to backend: %s', "edx.x", "tracking_logs")
    log.info('Unable to send edx event "%s" to backend: %s', "edx.\n", "tracking_logs")
    clean, dirty = caplog.records
    assert clean.msg == 'Unable to send edx event "%s" to backend: %s'  # Sentry groups by it
    assert clean.args == ("edx.x", "tracking_logs")
    assert dirty.getMessage() == 'Unable to send edx event "edx.\\n" to backend: tracking_logs'


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        (
            "postgresql://app:pw@db:5432/events?table=t",
            "postgresql://app:***@db:5432/events?table=t",
        ),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://user@host/1", "redis://user@host/1"),
        ("redis://a:pw@[::1:bad", "redis://***@[::1:bad"),
        ("events.db", "events.db"),
    ],
)
def test_without_password_hides_only_the_password(url: str, shown: str) -> None:
    assert without_password(url) == shown
