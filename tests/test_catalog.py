"""The generated catalogue: content, drift, formats, the CLI and the HTML page in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import browser_support
from conftest import service_unavailable
from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.catalog import build_catalogue, render_json_schema, render_markdown
from eventtracking.catalog.build import PII_MASK
from eventtracking.cli import cli
from eventtracking.registry import Registry
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.tracker import Tracker

V1 = {
    "video_id": {"description": "The video.", "type": "string", "required": True},
    "position": "Seconds from the start.",
    "email": {"description": "Who watched.", "pii": True},
}
V2 = {**V1, "speed": "Playback speed."}


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    with Tracker({"db": SQLiteBackend(path)}, envelope="full") as t:
        t.register("edx.video.played", "A learner started a video.", V1)
        t.register_context("request", "Per request.", {"user_id": "The learner."})
        t.enter_context("request", {"user_id": 7})
        t.emit("edx.video.played", {"video_id": "a", "email": "a@example.com", "extra": 1})
        t.register("edx.video.played", "A learner started a video.", V2)
        t.emit("edx.video.played", {"video_id": "b", "email": "b@example.com", "speed": 2})
        t.exit_context("request")
        t.emit("nav.request", {"url": "/"})
    return path


def test_catalogue_from_a_store_alone(store_path: Path) -> None:
    catalogue = build_catalogue(None, SQLiteStore(store_path, create=False))
    played, nav = catalogue.events
    assert played.name == "edx.video.played" and nav.name == "nav.request"
    assert [change.field for change in played.changes[0]] == ["speed"]
    assert played.changes[0][0].change == "added"
    assert played.count == 2 and played.first_seen is not None and played.last_seen is not None
    assert played.example is not None and played.example["data"]["email"] == PII_MASK
    assert played.example["data"]["video_id"] == "b"
    assert played.usual_contexts == {"user_id": 1.0}
    assert played.undocumented_fields == ["extra"]
    assert played.unseen_fields == ["position"]
    assert not nav.documented and nav.count == 1
    assert catalogue.drift == {
        "unregistered": ["nav.request"],
        "undocumented_fields": {"edx.video.played": ["extra"]},
        "unseen_fields": {"edx.video.played": ["position"]},
    }
    assert [c.name for c in catalogue.contexts] == ["request"]


def test_a_registry_without_a_store_has_no_drift() -> None:
    registry = Registry()
    registry.register("a", "doc", {"x": "X."})
    catalogue = build_catalogue(registry, None)
    assert not catalogue.has_drift and catalogue.events[0].count == 0


def test_the_given_registry_is_left_untouched_and_stays_current(store_path: Path) -> None:
    registry = Registry()
    mine = registry.register("edx.video.played", "Newest docs.", {**V2, "position": "Seconds."})
    catalogue = build_catalogue(registry, SQLiteStore(store_path, create=False))
    assert catalogue.events[0].current is not None and catalogue.events[0].current.id == mine.id
    assert len(catalogue.events[0].versions) == 3
    assert len(registry.versions("edx.video.played")) == 1


def test_markdown_and_json_schema(store_path: Path) -> None:
    catalogue = build_catalogue(None, SQLiteStore(store_path, create=False))
    markdown = render_markdown(catalogue)
    assert "### `edx.video.played`" in markdown and "added `speed`" in markdown
    assert "`nav.request` is stored but never registered" in markdown
    assert "a@example.com" not in markdown and "b@example.com" not in markdown
    schema = json.loads(render_json_schema(catalogue))
    played = schema["$defs"]["edx.video.played"]
    assert played["properties"]["name"] == {"const": "edx.video.played"}
    assert played["properties"]["data"]["required"] == ["video_id"]
    assert "context:request" in schema["$defs"]
    assert {"$ref": "#/$defs/edx.video.played"} in schema["oneOf"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_check_fails_on_drift_and_passes_without(store_path: Path, tmp_path: Path) -> None:
    code, out, err = invoke("catalog", "--store", str(store_path), "--check")
    assert code == 1 and "1 unregistered name(s)" in err
    clean = tmp_path / "clean.db"
    with Tracker({"db": SQLiteBackend(clean)}, envelope="full") as t:
        t.register("ok", "Fine.", {"a": "A."})
        t.emit("ok", {"a": 1})
    code, out, _ = invoke("catalog", "--store", str(clean), "--check", "--format", "markdown")
    assert code == 0 and "None: every stored event name" in out


def test_cli_sources_and_errors(store_path: Path, tmp_path: Path) -> None:
    catalogue = tmp_path / "events.toml"
    catalogue.write_text(
        '[events."nav.request"]\ndescription = "A page view."\nfields = { url = "URL." }\n'
    )
    code, out, _ = invoke("catalog", "--catalogue", str(catalogue), "--format", "json-schema")
    assert code == 0 and "nav.request" in json.loads(out)["$defs"]
    out_file = tmp_path / "catalog.md"
    code, _, _ = invoke(
        "catalog", "--store", str(store_path), "--catalogue", str(catalogue), "-o", str(out_file)
    )
    assert code == 0 and "A page view." in out_file.read_text()
    code, out, _ = invoke("catalog", "--module", "catalog_fixtures.registers")
    assert code == 0 and "module.event" in out
    config = tmp_path / "tracker.toml"
    config.write_text('[registry]\ncatalogue = ["events.toml"]\n')
    code, out, _ = invoke("catalog", "--config", str(config))
    assert code == 0 and "nav.request" in out
    assert invoke("catalog")[0] == 2
    code, _, err = invoke("catalog", "--module", "no.such.module")
    assert code == 1 and "cannot import" in err
    code, _, err = invoke("catalog", "--catalogue", str(tmp_path / "missing.toml"))
    assert code == 1 and "not found" in err
    code, _, err = invoke("catalog", "--store", str(tmp_path / "missing.db"))
    assert code == 1 and "no such event store" in err


# The browser tests' flags, plus time for the page's script to run before the dump.
CHROMIUM_FLAGS = [*browser_support.CHROMIUM_FLAGS, "--virtual-time-budget=3000"]


def test_html_works_offline_in_headless_chromium(store_path: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        service_unavailable("chromium", "no chromium binary on PATH (apt-get install chromium)")
    page = tmp_path / "catalog.html"
    code, _, _ = invoke("catalog", "--store", str(store_path), "--format", "html", "-o", str(page))
    assert code == 0
    html = page.read_text()
    assert "<script src" not in html and "<link" not in html  # self-contained

    def dom(fragment: str) -> str:
        result = subprocess.run(
            [
                str(browser),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                f"{page.as_uri()}{fragment}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    everything = dom("")
    assert "3 of 3 types shown" in everything  # the script ran
    assert 'data-search="edx.video.played' in everything
    searched = dom("#q=video")
    assert "1 of 3 types shown" in searched

    def tag(document: str, name: str) -> str:
        at = document.index(f'data-search="{name}')
        return document[document.rindex("<section", 0, at) : document.index(">", at)]

    assert "hidden" not in tag(searched, "edx.video.played")
    assert "hidden" in tag(searched, "nav.request")
    assert "hidden" not in tag(everything, "nav.request")
