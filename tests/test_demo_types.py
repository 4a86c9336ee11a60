"""The demo documents what it emits, and suggests commands that run where it was started."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from eventtracking.cli import cli
from eventtracking.cli.demo import DemoRun
from eventtracking.cli.demo_types import CONTEXT_TYPES, EVENT_TYPES
from eventtracking.cli.next_steps import next_commands, program
from eventtracking.store import Query
from eventtracking.store.sqlite import SQLiteStore


def test_every_type_the_demo_emits_is_documented_in_its_store(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with DemoRun(path) as run:
        run.readme_example()
        counts = run.simulate(3000, seed=11)
    assert set(counts) <= set(EVENT_TYPES)
    assert set(counts) == set(EVENT_TYPES)  # the workload reaches every documented type
    store = SQLiteStore(path, create=False)
    try:
        stored = {(entry["kind"], entry["name"]) for entry in store.types()}
        events = store.query(Query(limit=50))
    finally:
        store.close()
    assert {("event", name) for name in EVENT_TYPES} <= stored
    assert {("context", name) for name in CONTEXT_TYPES} <= stored
    assert all("type" in event["meta"] for event in events)
    assert all(not event["meta"].get("problems") for event in events)  # valid as documented


def test_personal_fields_are_marked_pii() -> None:
    session = CONTEXT_TYPES["session"][1]
    assert all(session[key]["pii"] for key in ("user_id", "username", "ip", "session", "agent"))
    assert not session["accept_language"].get("pii")
    assert EVENT_TYPES["edx.forum.thread.created"][1]["title"]["pii"]
    for description, fields in [*EVENT_TYPES.values(), *CONTEXT_TYPES.values()]:
        assert description and all(spec["description"] for spec in fields.values())


def test_catalog_check_passes_on_the_demo_store_and_masks_pii(tmp_path: Path) -> None:
    store = str(tmp_path / "events.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", "--store", store, "--events", "500"]).exit_code == 0
    result = runner.invoke(cli, ["catalog", "--store", store, "--check"])
    assert result.exit_code == 0, result.output
    assert "Not documented" not in result.output
    assert '"username":"[PII]"' in result.output


def test_program_names_the_command_as_it_was_started(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "eventtracking"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    assert program(str(script)) == str(script)  # not on PATH: print the path
    assert program("/nowhere/eventtracking") == "eventtracking"  # not a file: the bare name
    assert (
        program("/x/eventtracking/__main__.py", "/usr/bin/python3")
        == "/usr/bin/python3 -m eventtracking"
    )
    assert (
        next_commands("my store.db", "et")[0]
        == "et query --store 'my store.db' --name 'edx.video.*' --limit 5"
    )
    assert all(" --store " not in c or "catalog" in c for c in next_commands("events.db", "et"))
