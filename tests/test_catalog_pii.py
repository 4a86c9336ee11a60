"""No value of a field marked PII, in data or in context, appears in any catalogue output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from eventtracking.backends.sqlite import SQLiteBackend
from eventtracking.catalog import build_catalogue, render_html, render_json_schema, render_markdown
from eventtracking.catalog.build import PII_MASK
from eventtracking.cli import cli
from eventtracking.registry import Registry, load_catalogue
from eventtracking.store.sqlite import SQLiteStore
from eventtracking.tracker import Tracker

SECRETS = (
    "secret-email@example.com",
    "10.99.88.77",
    "secret-user-4242",
    "secret-session-abc",
    "secret-old-phone",
    "secret-enum-value",
    "secret-example-address",
)

TOML = """
[contexts.session]
description = "The session, documented in a catalogue file."
fields = { session_token = { description = "The token.", pii = true } }
"""


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    toml = tmp_path / "catalogue.toml"
    toml.write_text(TOML)
    with Tracker({"db": SQLiteBackend(path)}, envelope="full", validation="warn") as t:
        load_catalogue(toml, t.registry)
        t.register_context(
            "request",
            "Per request.",
            {"user_id": {"description": "The learner.", "pii": True}, "ip": {"pii": True}},
        )
        t.register(
            "shop.signup",
            "Signed up.",
            {"phone": {"pii": True}, "plan": "The plan."},
        )
        t.register(
            "shop.signup",
            "Signed up (v2).",
            {
                "email": {"pii": True, "enum": ["x"], "examples": ["secret-example-address"]},
                "plan": "The plan.",
            },
        )
        with (
            t.context("request", {"user_id": "secret-user-4242", "ip": "10.99.88.77"}),
            t.context("session", {"session_token": "secret-session-abc"}),
        ):
            t.emit("shop.signup", {"phone": "secret-old-phone", "plan": "gold"})
            t.emit("shop.signup", {"email": "secret-email@example.com", "plan": "gold"})
            t.emit("shop.other", {"email": "not-secret"})
            t.emit("shop.signup", {"email": "secret-enum-value", "plan": "silver"})
    return path


def outputs(store_path: Path) -> dict[str, str]:
    catalogue = build_catalogue(None, SQLiteStore(store_path, create=False))
    found = {
        "html": render_html(catalogue),
        "markdown": render_markdown(catalogue),
        "json": render_json_schema(catalogue),
    }
    runner = CliRunner()
    for fmt in ("html", "markdown", "json-schema"):
        result = runner.invoke(cli, ["catalog", "--store", str(store_path), "--format", fmt])
        assert result.exit_code == 0, result.output
        found[f"cli {fmt}"] = result.output
    return found


def test_no_value_marked_pii_appears_in_any_output(store_path: Path) -> None:
    for name, text in outputs(store_path).items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} appears in the {name} output"
        if name in ("html", "markdown"):
            assert PII_MASK in text


def test_the_example_masks_data_context_and_problem_details(store_path: Path) -> None:
    registry = Registry()
    catalogue = build_catalogue(registry, SQLiteStore(store_path, create=False))
    (signup,) = [e for e in catalogue.events if e.name == "shop.signup"]
    example = signup.example
    assert example is not None
    assert example["data"] == {"email": PII_MASK, "plan": "silver"}
    assert example["context"]["user_id"] == PII_MASK
    assert example["context"]["ip"] == PII_MASK
    assert example["context"]["session_token"] == PII_MASK
    problems = example["meta"]["problems"]
    assert problems and all(p["detail"] == PII_MASK for p in problems if p["field"] == "data.email")


def test_validation_problems_never_quote_a_pii_value(caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(validation="warn", envelope="full")
    tracker.register("t", "T.", {"email": {"pii": True, "enum": ["x"]}, "kind": {"enum": ["a"]}})
    tracker.emit("t", {"email": "secret-email@example.com", "kind": "b"})
    assert "secret-email@example.com" not in caplog.text
    assert "'b' is not allowed" in caplog.text  # values of other fields are still shown
