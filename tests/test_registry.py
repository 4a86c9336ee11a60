"""Event and context type registration, versions, ids and validation at emit."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventtracking import diagnostics
from eventtracking.exceptions import ImproperlyConfigured, ValidationError
from eventtracking.registry import Registry, load_catalogue, metadata_for, version_from_dict
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker

VIDEO = {
    "video_id": {"description": "The video's usage key.", "type": "string", "required": True},
    "position": {"description": "Seconds from the start.", "type": "number"},
    "speed": {"description": "Playback speed.", "enum": ["0.5", "1.0", "2.0"]},
    "user_email": {"description": "Who watched.", "type": "string", "pii": True},
}


def make(**kwargs: Any) -> tuple[Tracker, InMemoryBackend]:
    mem = InMemoryBackend()
    kwargs.setdefault("envelope", "full")  # meta rides on the full envelope
    return Tracker({"mem": mem}, **kwargs), mem


def test_register_returns_a_version_with_content_id_source_and_time() -> None:
    t, _ = make()
    version = t.register("edx.video.played", "A learner started a video.", VIDEO)
    assert len(version.id) == 16 and int(version.id, 16) >= 0
    assert version.source.startswith(f"{__name__}:")
    assert version.registered_at is not None
    assert version.field("position") is not None
    assert version.field("position").type == ("number",)  # type: ignore[union-attr]
    assert version.schema["required"] == ["video_id"]
    assert version.schema["properties"]["user_email"]["x-pii"] is True
    assert metadata_for(version.id) is version


def test_same_metadata_same_id_changed_metadata_new_version_old_kept() -> None:
    registry = Registry()
    first = registry.register("e", "doc", {"a": "field a"})
    again = registry.register("e", "doc", {"a": "field a"})
    assert again.id == first.id and len(registry.versions("e")) == 1
    changed = registry.register("e", "doc", {"a": "field a", "b": "new"})
    assert changed.id != first.id
    assert [v.id for v in registry.versions("e")] == [first.id, changed.id]
    assert registry.current("e") is changed
    assert registry.register("e", "doc", {"a": "field a"}).id == first.id
    assert registry.current("e").id == first.id  # type: ignore[union-attr]


def test_ids_are_stable_across_processes() -> None:
    code = (
        "from eventtracking.registry import Registry;"
        "print(Registry().register('e', 'doc', {'a': {'type': 'int', 'required': True}}).id)"
    )
    ids = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    local = Registry().register("e", "doc", {"a": {"type": "int", "required": True}}).id
    assert ids == {local}


descriptions = st.text(max_size=20)
field_docs = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.fixed_dictionaries(
        {"description": descriptions},
        optional={
            "type": st.sampled_from(["string", "integer", "number"]),
            "required": st.booleans(),
        },
    ),
    max_size=4,
)


@given(st.text(min_size=1, max_size=10), descriptions, field_docs, descriptions)
def test_any_change_changes_the_id(
    name: str, description: str, fields: dict[str, Any], other: str
) -> None:
    base = Registry().register(name, description, fields).id
    assert Registry().register(name, description, fields).id == base
    if other != description:
        assert Registry().register(name, other, fields).id != base
    assert Registry().register(name + "x", description, fields).id != base
    assert Registry().register(name, description, {**fields, "zz_new": "x"}).id != base


def test_json_schema_registration() -> None:
    schema = {
        "type": "object",
        "properties": {
            "grade": {"type": "number", "description": "The grade."},
            "state": {"enum": ["open", "closed"]},
        },
        "required": ["grade"],
        "additionalProperties": False,
    }
    t, mem = make(validation="strict")
    version = t.register("problem_check", "A learner checked an answer.", schema=schema)
    assert version.schema == schema
    assert version.field("grade").required  # type: ignore[union-attr]
    t.emit("problem_check", {"grade": 0.5, "state": "open"})
    with pytest.raises(ValidationError, match="enum"):
        t.emit("problem_check", {"grade": 0.5, "state": "weird"})
    assert len(mem.events) == 1


def test_dataclass_and_typeddict_registration() -> None:
    @dataclasses.dataclass
    class VideoPlayed:
        """A learner started a video."""

        __event_name__ = "edx.video.played"
        video_id: str = dataclasses.field(metadata={"description": "The video."})
        position: float | None = None

    class Enrolled(TypedDict):
        """A learner enrolled."""

        course_id: Annotated[str, "The course."]
        mode: str

    registry = Registry()
    played = registry.register_class(VideoPlayed)
    assert played.name == "edx.video.played" and played.description == "A learner started a video."
    assert (
        played.field("video_id").required and played.field("video_id").description == "The video."
    )  # type: ignore[union-attr]
    assert played.field("position").type == ("null", "number")  # type: ignore[union-attr]
    enrolled = registry.register_class(Enrolled, name="edx.course.enrollment.activated")
    assert enrolled.field("course_id").description == "The course."  # type: ignore[union-attr]
    assert enrolled.field("mode").required  # type: ignore[union-attr]
    with pytest.raises(ImproperlyConfigured, match="__event_name__"):
        registry.register_class(Enrolled)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"a": 3}, "description string or a dict"),
        ({"a": {"type": "text"}}, "is not a type"),
        ({"a": {"colour": "red"}}, "unknown key"),
        ({"a": {"enum": "abc"}}, "enum"),
        ({"a": {"required": "yes"}}, "required"),
    ],
)
def test_bad_field_docs_say_what_to_fix(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        Registry().register("e", "doc", fields)


def test_bad_registration_arguments() -> None:
    registry = Registry()
    with pytest.raises(ImproperlyConfigured, match="not both"):
        registry.register("e", "d", {"a": "x"}, schema={"type": "object"})
    with pytest.raises(ImproperlyConfigured, match="policy"):
        registry.register("e", "d", policy="loud")  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="non-empty"):
        registry.register("", "d")
    with pytest.raises(ValueError, match="validation"):
        Tracker(validation="loud")  # type: ignore[arg-type]


# -- validation under each policy --------------------------------------------------

CASES = [
    ("unknown_field", {"video_id": "v", "extra": 1}, "data.extra"),
    ("missing_field", {"position": 1.0}, "data.video_id"),
    ("wrong_type", {"video_id": 7}, "data.video_id"),
    ("wrong_type", {"video_id": "v", "position": True}, "data.position"),
    ("enum", {"video_id": "v", "speed": "9"}, "data.speed"),
    (
        "not_serializable",
        {"video_id": "v", "position": 1, "speed": "1.0", "blob": object()},
        "data.blob",
    ),
]


@pytest.mark.parametrize(("rule", "data", "field"), CASES)
def test_warn_keeps_marks_logs_once_and_counts(
    rule: str, data: dict[str, Any], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    t, mem = make()
    t.register("edx.video.played", "doc", VIDEO, additional_fields=rule == "not_serializable")
    with caplog.at_level(logging.WARNING, logger="eventtracking"):
        t.emit("edx.video.played", data)
        t.emit("edx.video.played", data)
    assert len(mem.events) == 2
    problems = mem.events[0]["meta"]["problems"]
    assert {"rule": rule, "field": field} in [
        {"rule": p["rule"], "field": p["field"]} for p in problems
    ]
    assert diagnostics.snapshot()[f"validation.{rule}"] == 2
    assert (
        len([r for r in caplog.records if field in r.getMessage() and rule in r.getMessage()]) == 1
    )


def test_validation_counts_belong_to_the_tracker_that_found_them() -> None:
    noisy, noisy_mem = make()
    quiet, _ = make()
    for t in (noisy, quiet):
        t.register("edx.video.played", "doc", VIDEO)
    noisy.emit("edx.video.played", {"surprise": 1})
    noisy.emit("edx.video.played", {"surprise": 2})
    assert len(noisy_mem.events) == 2  # warned, kept
    assert noisy.stats()["validation.unknown_field"] == 2
    assert "validation.unknown_field" not in quiet.stats()
    assert diagnostics.snapshot()["validation.unknown_field"] == 2  # the process total


@pytest.mark.parametrize(("rule", "data", "field"), CASES)
def test_strict_raises_naming_event_field_and_rule(
    rule: str, data: dict[str, Any], field: str
) -> None:
    t, mem = make(validation="strict")
    t.register("edx.video.played", "doc", VIDEO, additional_fields=rule == "not_serializable")
    with pytest.raises(ValidationError) as info:
        t.emit("edx.video.played", data)
    assert info.value.event_name == "edx.video.played"
    assert (info.value.rule, info.value.field) == (rule, field)
    assert rule in str(info.value) and field in str(info.value)
    assert mem.events == []


@pytest.mark.parametrize(("rule", "data", "field"), CASES)
def test_off_checks_nothing_but_still_references_the_type(
    rule: str, data: dict[str, Any], field: str
) -> None:
    t, mem = make(validation="off")
    version = t.register("edx.video.played", "doc", VIDEO)
    t.emit("edx.video.played", data)
    assert mem.events[0]["meta"] == {"type": version.id}
    assert not any(k.startswith("validation.") for k in diagnostics.snapshot())


def test_unregistered_type_and_per_type_policy() -> None:
    t, mem = make()
    t.register("known", "doc", {"a": "x"}, policy="strict")
    t.emit("unknown.type", {"z": 1})
    assert mem.events[0]["meta"]["problems"][0]["rule"] == "unregistered"
    with pytest.raises(ValidationError):
        t.emit("known", {"b": 1})  # this type is strict though the tracker warns


def test_too_large() -> None:
    t, mem = make(max_event_size=300)
    t.register("e", "doc", {"text": "x"})
    t.emit("e", {"text": "x" * 500})
    assert mem.events[0]["meta"]["problems"][0]["rule"] == "too_large"
    t.emit("e", {"text": "short"})
    assert "problems" not in mem.events[1]["meta"]


def test_a_tracker_with_nothing_registered_adds_nothing() -> None:
    t, mem = make()
    t.emit("anything", {"a": 1})
    assert "meta" not in mem.events[0]
    assert not any(k.startswith("validation.") for k in diagnostics.snapshot())


def test_openedx_envelope_validates_but_keeps_four_keys() -> None:
    t, mem = make(envelope="openedx")
    t.register("e", "doc", {"a": {"type": "integer"}})
    t.emit("e", {"a": "not an int"})
    assert sorted(mem.events[0]) == ["context", "data", "name", "timestamp"]
    assert diagnostics.snapshot()["validation.wrong_type"] == 1


def test_context_types_are_referenced_and_validated_on_entry() -> None:
    t, mem = make()
    request = t.register_context("request", "Per request.", {"user_id": {"type": "integer"}})
    t.register("e", "doc", {})
    t.enter_context("page", {"path": "/x"}, description="The page.", fields={"path": "Path."})
    page = t.registry.current("page", "context")
    with t.context("request", {"user_id": 7}):
        t.emit("e")
    t.emit("e")
    assert mem.events[0]["meta"]["contexts"] == {"page": page.id, "request": request.id}  # type: ignore[union-attr]
    assert mem.events[1]["meta"]["contexts"] == {"page": page.id}  # type: ignore[union-attr]
    t.enter_context("request", {"user_id": "seven"})
    assert diagnostics.snapshot()["validation.wrong_type"] == 1
    strict, _ = make(validation="strict")
    strict.register_context("request", "Per request.", {"user_id": {"type": "integer"}})
    with pytest.raises(ValidationError, match=r"context\.request\.user_id"):
        strict.enter_context("request", {"user_id": "seven"})


def test_meta_follows_new_registrations() -> None:
    t, mem = make()
    t.register("e", "doc", {})
    t.enter_context("c", {"k": 1})
    t.emit("e")
    c = t.register_context("c", "now documented", {"k": "key"})
    t.emit("e")
    assert "contexts" not in mem.events[0]["meta"]
    assert mem.events[1]["meta"]["contexts"] == {"c": c.id}


def test_version_round_trips_through_its_dict() -> None:
    version = Registry().register("e", "doc", VIDEO)
    rebuilt = version_from_dict(json.loads(json.dumps(version.to_dict())))
    assert rebuilt.id == version.id and rebuilt.fields == version.fields
    assert rebuilt.source == version.source


def test_catalogue_file(tmp_path: Path) -> None:
    path = tmp_path / "events.toml"
    path.write_text(
        """
[events."edx.video.played"]
description = "A learner started a video."
policy = "strict"
[events."edx.video.played".fields]
video_id = { description = "The video.", type = "string", required = true }
position = "Seconds from the start."

[contexts.request]
description = "Per request."
fields = { user_id = { description = "The learner.", type = "integer", pii = true } }
"""
    )
    registry = Registry()
    assert load_catalogue(path, registry) == 2
    played = registry.current("edx.video.played")
    assert played is not None and played.source == str(path)
    assert registry.policy("edx.video.played") == "strict"
    assert registry.current("request", "context").field("user_id").pii  # type: ignore[union-attr]
    bad = tmp_path / "bad.toml"
    bad.write_text('[events.x]\ncolour = "red"\n')
    with pytest.raises(ImproperlyConfigured, match="colour"):
        load_catalogue(bad, registry)
    bad.write_text("[widgets.x]\n")
    with pytest.raises(ImproperlyConfigured, match="unknown section"):
        load_catalogue(bad, registry)
    with pytest.raises(ImproperlyConfigured, match="not found"):
        load_catalogue(tmp_path / "missing.toml", registry)


def test_tracker_toml_loads_catalogue_files_and_validation_options(tmp_path: Path) -> None:
    from eventtracking.config import load_tracker

    (tmp_path / "events.toml").write_text(
        '[events.e]\ndescription = "E."\nfields = { a = { description = "A.", type = "int" } }\n'
    )
    config = tmp_path / "tracker.toml"
    config.write_text(
        '[tracker]\nvalidation = "strict"\nmax_event_size = 500\n'
        '[registry]\ncatalogue = ["events.toml"]\n'
    )
    tracker = load_tracker(config)
    assert tracker.registry.current("e") is not None
    with pytest.raises(ValidationError, match="wrong_type"):
        tracker.emit("e", {"a": "not an int"})
    for bad, message in [
        ('[tracker]\nvalidation = "loud"\n', "tracker.validation"),
        ("[tracker]\nmax_event_size = -1\n", "tracker.max_event_size"),
        ('[registry]\ncatalogue = ["missing.toml"]\n', "not found"),
        ('[registry]\nfiles = ["x"]\n', "unknown option"),
    ]:
        config.write_text(bad)
        with pytest.raises(ImproperlyConfigured, match=message):
            load_tracker(config)


def test_trackers_sharing_a_locator_keep_their_own_policies() -> None:
    # Checkers cache per-name entries in the shared context view; each must
    # see only its own (one validates, the other has validation off).
    from eventtracking.locator import DefaultContextLocator

    locator = DefaultContextLocator()
    registry = Registry()
    registry.register("edx.video.played", "doc", VIDEO)
    warn_mem, off_mem = InMemoryBackend(), InMemoryBackend()
    warn = Tracker({"m": warn_mem}, context_locator=locator, registry=registry, envelope="full")
    off = Tracker(
        {"m": off_mem},
        context_locator=locator,
        registry=registry,
        validation="off",
        envelope="full",
    )
    bad = {"video_id": 7}
    with warn.context("page", {"path": "/x"}):
        for _ in range(2):
            warn.emit("edx.video.played", bad)
            off.emit("edx.video.played", bad)
    assert all("problems" in e["meta"] for e in warn_mem.events)
    assert all("problems" not in e["meta"] for e in off_mem.events)
    assert len(warn_mem.events) == len(off_mem.events) == 2
