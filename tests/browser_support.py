"""Headless Chromium for the browser tests: Debian's chromium and chromedriver through Selenium.

Without Chromium, its driver or Selenium the test skips (fails when
``EVENTTRACKING_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import service_unavailable

# Headless, and quiet on this machine's closed network (no background fetches).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(profile: Path, monkeypatch: pytest.MonkeyPatch, *extra_flags: str) -> Iterator[Any]:
    """A Selenium driver of headless Chromium with a new profile in `profile`, quit afterwards."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if binary is None or chromedriver is None:
        service_unavailable(
            "chromium",
            "chromium and chromedriver must be on PATH (apt-get install chromium chromium-driver)",
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        service_unavailable("selenium", f"{exc}; pip install -e '.[test]'")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(executable_path=str(chromedriver)), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
