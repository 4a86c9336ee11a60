"""Management commands: the core CLI's query, tail, stats and catalog on the configured store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

import django_support
from django_support import install
from eventtracking.django.management.cli_bridge import configured_store
from eventtracking.tracker import register_tracker


def sqlite_tree(path: Path) -> dict[str, Any]:
    """The Open edX-shaped tree with a SQLite store nested in a routing backend."""
    return {
        "tracking_logs": {
            "ENGINE": "eventtracking.backends.routing.RoutingBackend",
            "OPTIONS": {
                "backends": {
                    "local": {
                        "ENGINE": "eventtracking.backends.logger.LoggerBackend",
                        "OPTIONS": {"name": "tracking"},
                    },
                    "store": {
                        "ENGINE": "eventtracking.backends.sqlite.SQLiteBackend",
                        "OPTIONS": {"path": str(path)},
                    },
                }
            },
        }
    }


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    tracker = install(settings, EVENT_TRACKING_BACKENDS=sqlite_tree(path))
    with tracker.context("request", {"user_id": 7}):
        tracker.emit("client.video.played", {"video_id": "v1"})
        tracker.emit("shop.order.placed", {"order_id": 3})
    tracker.emit("client.video.paused", {"video_id": "v1"})
    tracker.close()
    return path


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_store_is_found_in_the_backend_tree(store: Path, settings: Any) -> None:
    assert configured_store() == str(store)
    settings.EVENT_TRACKING_STORE = "/elsewhere/events.db"
    assert configured_store() == "/elsewhere/events.db"
    settings.EVENT_TRACKING_STORE = None
    settings.EVENT_TRACKING_BACKENDS = {}
    assert configured_store() is None


def test_query_filters_like_the_core_cli(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("eventtracking_query", "--name", "client.*", "--context", "user_id=7", "--json")
    (event,) = lines(capsys.readouterr().out)
    assert event["name"] == "client.video.played"
    assert event["context"]["user_id"] == 7
    call_command("eventtracking_query", "--newest", "--limit", "1", "--json")
    assert [e["name"] for e in lines(capsys.readouterr().out)] == ["client.video.paused"]


def test_tail_and_stats(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("eventtracking_tail", "-n", "2", "--json")
    names = [e["name"] for e in lines(capsys.readouterr().out)]
    assert names == ["shop.order.placed", "client.video.paused"]
    call_command("eventtracking_stats", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["total"] == 3
    assert summary["store"] == str(store)
    assert summary["by_name"]["client.video.played"] == 1


def test_an_explicit_store_wins(store: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"missing\.db"):
        call_command("eventtracking_stats", "--store", str(tmp_path / "missing.db"))


def test_bad_options_are_command_errors(store: Path) -> None:
    with pytest.raises(CommandError, match="is not a time"):
        call_command("eventtracking_query", "--since", "yesterday-ish")
    with pytest.raises(CommandError, match="KEY=VALUE"):
        call_command("eventtracking_query", "--context", "user_id")


def test_catalog_documents_the_apps_event_types(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tracker installed at start-up holds what the autodiscovery registered.
    register_tracker(django_support.SETUP_TRACKER)
    call_command("eventtracking_catalog", "--format", "markdown")
    text = capsys.readouterr().out
    assert "shop.order.placed" in text
    assert "A customer placed an order." in text
    assert "client.video.played" in text  # stored, never registered: drift
    with pytest.raises(SystemExit) as caught:
        call_command("eventtracking_catalog", "--check")
    assert caught.value.code == 1


def test_catalog_html_to_a_file(store: Path, tmp_path: Path) -> None:
    register_tracker(django_support.SETUP_TRACKER)
    out = tmp_path / "catalog.html"
    call_command("eventtracking_catalog", "--format", "html", "-o", str(out))
    assert "shop.order.placed" in out.read_text()
