"""The console in real headless Chromium: live events appear, charts count right, filters narrow.

Runs over SQLite and the real PostgreSQL (`console_support.filled`), against
the console served by uvicorn on 127.0.0.1. Chromium and chromedriver are
Debian's (flags as in test_django_browser); without them the tests skip
(fail when ``EVENTTRACKING_REQUIRE_SERVICES=1``). The DOM is polled with a
deadline of a few seconds; no timing is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from console_support import Filled, console_over, driver, filled, serve

__all__ = ["driver", "filled"]
pytestmark = [pytest.mark.services]
T = TypeVar("T")


def eventually(read: Callable[[], T], ok: Callable[[T], bool], seconds: float = 5.0) -> T:
    """Poll `read()` until `ok` holds for its value; fail with the last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"still not there after {seconds} s: {value!r}")
        time.sleep(0.05)


def listed(driver: Any) -> list[str]:
    script = "return [...document.querySelectorAll('#events li')].map(li => li.dataset.name)"
    names: list[str] = driver.execute_script(script)
    return names


def test_a_new_event_appears_in_the_live_view(filled: Filled, driver: Any) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        driver.get(f"{base}/")
        eventually(lambda: listed(driver), lambda names: len(names) == 6)
        status = driver.find_element("id", "live-status")
        eventually(lambda: status.text, lambda text: text.startswith("live"))
        filled.emit("course.enrolled", {"course": "c1"}, user_id=5)
        names = eventually(lambda: listed(driver), lambda names: "course.enrolled" in names)
        assert names[0] == "course.enrolled" and len(names) == 7


def test_an_event_expands_to_its_json_and_documentation(filled: Filled, driver: Any) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        driver.get(f"{base}/?name=video.played")
        eventually(lambda: listed(driver), lambda names: len(names) == 3)
        first = driver.find_element("css selector", "#events li summary")
        assert "documented" in first.text
        first.click()
        details = driver.find_element("css selector", "#events li pre")
        eventually(lambda: details.text, lambda text: '"video_id"' in text)
        about = driver.find_element("css selector", "#events li .docinfo").text
        assert about.startswith("Emitted under documentation version")
        driver.get(f"{base}/?name=page.viewed")
        eventually(lambda: listed(driver), lambda names: len(names) == 3)
        badge = driver.find_element("css selector", "#events li .doc").text
        assert badge == "undocumented"


def test_a_chart_shows_the_right_counts(filled: Filled, driver: Any) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        driver.get(f"{base}/charts?range=1h&field=data.video_id")
        script = """
            const totals = {};
            for (const bar of document.querySelectorAll('svg.stacked rect.bar')) {
              totals[bar.dataset.name] = (totals[bar.dataset.name] || 0) + +bar.dataset.count;
            }
            const values = {};
            for (const bar of document.querySelectorAll('svg.top-values rect.bar')) {
              values[bar.dataset.label] = +bar.dataset.count;
            }
            return [totals, values];
        """
        totals, values = driver.execute_script(script)
        assert totals == {"video.played": 3, "page.viewed": 2}
        assert values == {"v1": 2, "v2": 1}


def test_a_filter_narrows_the_list(filled: Filled, driver: Any) -> None:
    with console_over(filled.location) as console, serve(console) as base:
        driver.get(f"{base}/")
        eventually(lambda: listed(driver), lambda names: len(names) == 6)
        driver.find_element("id", "f-name").send_keys("video.*")
        driver.find_element("id", "f-where").send_keys("user_id=7")
        driver.find_element("id", "f-apply").click()
        eventually(lambda: listed(driver), lambda names: names == ["video.played"] * 2)
        status = driver.find_element("id", "live-status")
        eventually(lambda: status.text, lambda text: text.startswith("live"))
        filled.emit("video.played", {"video_id": "other-user"}, user_id=8)
        filled.emit("page.viewed", {"path": "/x"}, user_id=7)
        filled.emit("video.played", {"video_id": "v9"}, user_id=7)
        eventually(lambda: listed(driver), lambda names: len(names) == 3)
        time.sleep(0.5)  # what should not appear has had the time to
        texts = driver.execute_script(
            "return [...document.querySelectorAll('#events li pre')].map(p => p.textContent)"
        )
        assert listed(driver) == ["video.played"] * 3
        assert not any("other-user" in text for text in texts)
