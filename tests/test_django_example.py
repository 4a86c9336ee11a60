"""The example project runs as the README says, and a broken setting stops Django at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"

FLOW = """
import json
from django.test import Client
from eventtracking import get_tracker

client = Client(raise_request_exception=False)
client.get("/")
token = client.cookies["csrftoken"].value
client.post("/login", HTTP_X_CSRFTOKEN=token)
played = {"video_id": "intro", "position": 12.5}
event = {"name": "client.video.played", "data": played, "context": {"section": "shop"}}
events = {"events": [event]}
ok = client.post("/tracking/events", json.dumps(events), content_type="application/json",
                 HTTP_X_CSRFTOKEN=token)
refused = client.post("/tracking/events", json.dumps({"name": "server.forged"}),
                      content_type="application/json", HTTP_X_CSRFTOKEN=token)
placed = client.post("/order", {"item": "pen", "csrfmiddlewaretoken": token})
failed = client.post("/order", {"fail": "1", "csrfmiddlewaretoken": token})
print(json.dumps([ok.status_code, refused.status_code, placed.status_code, failed.status_code]))
get_tracker().flush(5.0)
"""


def manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXAMPLE_DATA_DIR": str(data_dir), "PYTHONPATH": str(EXAMPLE)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_project_records_browser_and_server_events(tmp_path: Path) -> None:
    assert manage(tmp_path, "migrate", "-v", "0").returncode == 0
    checked = manage(tmp_path, "check")
    assert checked.returncode == 0, checked.stderr
    run = manage(tmp_path, "shell", "-c", FLOW)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [200, 400, 302, 500]

    query = manage(tmp_path, "eventtracking_query", "--limit", "0", "--json")
    assert query.returncode == 0, query.stderr
    events: list[dict[str, Any]] = [json.loads(line) for line in query.stdout.splitlines()]
    names = [e["name"] for e in events]
    assert names.count("shop.order.placed") == 1  # the failed order was rolled back
    (played,) = [e for e in events if e["name"] == "client.video.played"]
    assert played["context"]["username"] == "demo"
    assert played["context"]["ip"] == "127.0.0.1"
    assert played["context"]["client"] == {"section": "shop"}
    assert "type" in played["meta"]  # documented by shop/events.py
    requests = [e for e in events if e["name"] == "server.request"]
    assert {e["context"]["path"] for e in requests} >= {"/", "/login", "/order"}
    posted = [e["data"]["POST"] for e in requests if e["data"].get("POST")]
    assert posted and all(p["csrfmiddlewaretoken"] == "[REDACTED]" for p in posted)
    assert "shop.order.placed" in (tmp_path / "tracking.log").read_text()

    stats = manage(tmp_path, "eventtracking_stats", "--json")
    assert json.loads(stats.stdout)["by_name"]["client.video.played"] == 1
    catalog = manage(tmp_path, "eventtracking_catalog", "--format", "markdown")
    assert catalog.returncode == 0, catalog.stderr
    assert "A customer placed an order" in catalog.stdout


BROKEN = """
import django
from django.conf import settings
from django.core.management import call_command

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "eventtracking.django"],
    EVENT_TRACKING_ENABLED=True,
    EVENT_TRACKING_BACKENDS={
        "tracking_logs": {
            "ENGINE": "eventtracking.backends.routing.RoutingBackend",
            "OPTIONS": {"backends": {"local": {"ENGINE": "eventtracking.backends.nope.Logger"}}},
        }
    },
)
django.setup()
call_command("check")
"""


def test_a_broken_backend_tree_stops_django_at_start_up() -> None:
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BROKEN)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "ImproperlyConfigured" in run.stderr  # raised from the app's ready(), as Open edX does
    assert (
        "EVENT_TRACKING_BACKENDS.tracking_logs.OPTIONS.backends.local.ENGINE: cannot import "
        "'eventtracking.backends.nope.Logger'"
    ) in run.stderr


@pytest.mark.parametrize("module", ["exampleproject.wsgi", "exampleproject.asgi"])
def test_the_server_entry_points_load(tmp_path: Path, module: str) -> None:
    env = {**os.environ, "EXAMPLE_DATA_DIR": str(tmp_path), "PYTHONPATH": str(EXAMPLE)}
    run = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
