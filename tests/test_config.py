"""Tests for building trackers, backends and processors from configuration trees and TOML."""

from __future__ import annotations

import json
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventtracking import diagnostics, track, tracker
from eventtracking.backends.jsonl import JSONLinesBackend
from eventtracking.backends.logger import LoggerBackend
from eventtracking.backends.routing import RoutingBackend
from eventtracking.config import (
    build_backends,
    build_processors,
    import_object,
    instantiate,
    load_tracker,
    tracker_from_config,
)
from eventtracking.exceptions import EventError, ImproperlyConfigured
from eventtracking.locator import ThreadLocalContextLocator
from eventtracking.processors import NameWhitelistProcessor, Redactor, RegexFilter
from eventtracking.processors.redact import MASK
from eventtracking.testing import InMemoryBackend

ROUTING = "eventtracking.backends.routing.RoutingBackend"
LOGGER = "eventtracking.backends.logger.LoggerBackend"
MEMORY = "eventtracking.testing.InMemoryBackend"
WHITELIST = "eventtracking.processors.whitelist.NameWhitelistProcessor"


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    diagnostics.reset()
    yield
    diagnostics.reset()


class Holder:
    """A test factory whose options may hold components."""

    def __init__(self, child: Any = None, items: list[Any] | None = None, note: str = "") -> None:
        self.child = child
        self.items = items
        self.note = note


class Required:
    def __init__(self, needed: int, *, also: str, optional: float = 1.0) -> None:
        self.needed = needed
        self.also = also
        self.optional = optional


def make_widget(size: int = 1) -> dict[str, int]:
    return {"size": size}


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway importable module holding test factories; returns its name."""
    module = types.ModuleType("cfg_test_helpers")
    module.Holder = Holder  # type: ignore[attr-defined]
    module.Required = Required  # type: ignore[attr-defined]
    module.make_widget = make_widget  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cfg_test_helpers", module)
    return "cfg_test_helpers"


def openedx_backends(whitelist: list[str]) -> dict[str, Any]:
    """An EVENT_TRACKING_BACKENDS tree shaped like Open edX's LMS settings."""
    return {
        "tracking_logs": {
            "ENGINE": ROUTING,
            "OPTIONS": {
                "backends": {
                    "local": {
                        "ENGINE": LOGGER,
                        "OPTIONS": {"name": "tracking", "max_event_size": 50_000},
                    }
                }
            },
        },
        "segmentio": {
            "ENGINE": ROUTING,
            "OPTIONS": {
                "backends": {"memory": {"ENGINE": MEMORY}},
                "processors": [{"ENGINE": WHITELIST, "OPTIONS": {"whitelist": whitelist}}],
            },
        },
    }


def error_of(config: Any) -> str:
    with pytest.raises(ImproperlyConfigured) as info:
        tracker_from_config(config)
    return str(info.value)


# -- instantiate ------------------------------------------------------------------


class TestInstantiate:
    def test_upper_case_keys(self) -> None:
        backend = instantiate({"ENGINE": MEMORY, "OPTIONS": {"maxlen": 3}})
        assert isinstance(backend, InMemoryBackend)
        assert backend.maxlen == 3

    def test_lower_case_keys(self) -> None:
        backend = instantiate({"engine": LOGGER, "options": {"name": "x.y", "level": "debug"}})
        assert isinstance(backend, LoggerBackend)
        assert backend.event_logger.name == "x.y"

    def test_options_may_be_omitted_or_none(self) -> None:
        assert isinstance(instantiate({"ENGINE": MEMORY}), InMemoryBackend)
        assert isinstance(instantiate({"ENGINE": MEMORY, "OPTIONS": None}), InMemoryBackend)

    def test_a_function_can_be_the_engine(self, helpers: str) -> None:
        assert instantiate({"ENGINE": f"{helpers}.make_widget", "OPTIONS": {"size": 4}}) == {
            "size": 4
        }

    def test_nested_component_option_is_built_first(self, helpers: str) -> None:
        built = instantiate(
            {
                "ENGINE": f"{helpers}.Holder",
                "OPTIONS": {
                    "child": {"engine": f"{helpers}.Holder", "options": {"note": "inner"}},
                    "note": "outer",
                },
            }
        )
        assert isinstance(built, Holder)
        assert isinstance(built.child, Holder)
        assert built.child.note == "inner"
        assert built.note == "outer"

    def test_list_of_components_is_built(self, helpers: str) -> None:
        built = instantiate(
            {
                "ENGINE": f"{helpers}.Holder",
                "OPTIONS": {"items": [{"ENGINE": MEMORY}, {"ENGINE": f"{helpers}.make_widget"}]},
            }
        )
        assert isinstance(built.items[0], InMemoryBackend)
        assert built.items[1] == {"size": 1}

    def test_plain_values_pass_through_unchanged(self, helpers: str) -> None:
        items = [1, {"not": "a component"}]
        built = instantiate({"ENGINE": f"{helpers}.Holder", "OPTIONS": {"items": items}})
        assert built.items == [1, {"not": "a component"}]

    def test_recursive_routing_tree(self) -> None:
        routing = instantiate(
            {
                "ENGINE": ROUTING,
                "OPTIONS": {
                    "backends": {
                        "inner": {
                            "engine": ROUTING,
                            "options": {"backends": {"deep": {"engine": MEMORY}}},
                        }
                    },
                    "processors": [{"ENGINE": "eventtracking.processors.redact.Redactor"}],
                },
            }
        )
        assert isinstance(routing, RoutingBackend)
        assert isinstance(routing.backends["inner"], RoutingBackend)
        deep = routing.backends["inner"].backends["deep"]
        assert isinstance(deep, InMemoryBackend)
        assert isinstance(routing.processors[0], Redactor)
        routing.send({"name": "n", "data": {"password": "p"}, "context": {}})
        assert deep.events[0]["data"] == {"password": MASK}

    def test_build_backends_and_processors_helpers(self) -> None:
        backends = build_backends({"a": {"ENGINE": MEMORY}, "b": {"engine": MEMORY}})
        assert set(backends) == {"a", "b"}
        assert all(isinstance(b, InMemoryBackend) for b in backends.values())
        processors = build_processors(
            [{"ENGINE": WHITELIST, "OPTIONS": {"whitelist": ["x"]}}], "procs"
        )
        assert isinstance(processors[0], NameWhitelistProcessor)
        assert processors[0].whitelist == frozenset({"x"})

    def test_import_object(self) -> None:
        assert import_object(ROUTING, "p") is RoutingBackend


# -- the Open edX tree, end to end --------------------------------------------------


class TestOpenedxTree:
    def test_builds_the_expected_objects(self) -> None:
        built = tracker_from_config({"backends": openedx_backends(["edx.video.played"])})
        assert list(built.backends) == ["segmentio", "tracking_logs"]
        logs = built.get_backend("tracking_logs")
        assert isinstance(logs, RoutingBackend)
        local = logs.backends["local"]
        assert isinstance(local, LoggerBackend)
        assert local.event_logger.name == "tracking"
        assert local.max_event_size == 50_000
        segment = built.get_backend("segmentio")
        assert isinstance(segment.processors[0], NameWhitelistProcessor)
        assert isinstance(segment.backends["memory"], InMemoryBackend)

    def test_routes_events_end_to_end(self, caplog: pytest.LogCaptureFixture) -> None:
        built = tracker_from_config(
            {"backends": openedx_backends(["edx.video.played", "edx.course.enrollment.activated"])}
        )
        memory = built.get_backend("segmentio").backends["memory"]
        with caplog.at_level(logging.INFO, logger="tracking"):
            built.enter_context("outer", {"user_id": 10938})
            built.emit("navigation.request", {"url": "http://www.edx.org/some/path/1"})
            built.emit("edx.video.played", {"pos": 3})
            built.emit("edx.course.enrollment.activated", {"course_id": "c"})
            built.exit_context("outer")

        logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tracking"]
        assert [e["name"] for e in logged] == [
            "navigation.request",
            "edx.video.played",
            "edx.course.enrollment.activated",
        ]
        assert logged[0]["data"] == {"url": "http://www.edx.org/some/path/1"}
        assert logged[0]["context"] == {"user_id": 10938}
        assert memory.names() == ["edx.video.played", "edx.course.enrollment.activated"]
        assert memory.events[0]["context"] == {"user_id": 10938}

    def test_top_level_processors_run_before_every_branch(self) -> None:
        config = {
            "backends": openedx_backends(["a"]),
            "processors": [
                {
                    "ENGINE": "eventtracking.processors.regex_filter.RegexFilter",
                    "OPTIONS": {"filter_type": "blocklist", "regular_expressions": ["b"]},
                }
            ],
        }
        built = tracker_from_config(config)
        assert isinstance(built.processors[0], RegexFilter)
        memory = built.get_backend("segmentio").backends["memory"]
        built.emit("b", {})
        built.emit("a", {})
        assert memory.names() == ["a"]

    def test_settings_dict_is_not_modified(self) -> None:
        config = {"backends": openedx_backends(["a"])}
        snapshot = json.dumps(config, sort_keys=True)
        tracker_from_config(config)
        assert json.dumps(config, sort_keys=True) == snapshot

    def test_empty_config_gives_a_tracker_without_backends(self) -> None:
        built = tracker_from_config({})
        assert built.backends == {}
        built.emit("nothing.listens", {})


# -- errors name the exact path -------------------------------------------------------


class TestConfigErrors:
    def test_bad_module_names_path(self) -> None:
        backends = openedx_backends(["a"])
        backends["tracking_logs"]["OPTIONS"]["backends"]["local"]["ENGINE"] = (
            "eventtracking.backends.nonexistent.LoggerBackend"
        )
        message = error_of({"backends": backends})
        assert message.startswith("backends.tracking_logs.OPTIONS.backends.local.ENGINE: ")
        assert "cannot import 'eventtracking.backends.nonexistent.LoggerBackend'" in message

    def test_missing_attribute_names_path(self) -> None:
        backends = openedx_backends(["a"])
        backends["segmentio"]["OPTIONS"]["processors"][0]["ENGINE"] = (
            "eventtracking.processors.whitelist.NoSuchProcessor"
        )
        message = error_of({"backends": backends})
        assert message.startswith("backends.segmentio.OPTIONS.processors.0.ENGINE: ")
        assert "'eventtracking.processors.whitelist' has no 'NoSuchProcessor'" in message

    @pytest.mark.parametrize("engine", ["LoggerBackend", "", 42])
    def test_engine_not_a_dotted_path(self, engine: Any) -> None:
        message = error_of({"backends": {"x": {"ENGINE": engine}}})
        assert message.startswith("backends.x.ENGINE: ")
        assert "dotted path" in message

    def test_unknown_option_lists_valid_ones(self) -> None:
        message = error_of(
            {"backends": {"mem": {"ENGINE": MEMORY, "OPTIONS": {"maxlen": 3, "max_len": 4}}}}
        )
        assert message.startswith("backends.mem.OPTIONS: ")
        assert "unknown option(s) ['max_len']" in message
        assert "valid options: ['maxlen']" in message

    def test_unknown_option_deep_in_tree(self) -> None:
        backends = openedx_backends(["a"])
        backends["segmentio"]["OPTIONS"]["backends"]["memory"]["OPTIONS"] = {"colour": "red"}
        message = error_of({"backends": backends})
        assert message.startswith("backends.segmentio.OPTIONS.backends.memory.OPTIONS: ")
        assert "'colour'" in message

    def test_missing_required_option(self) -> None:
        message = error_of(
            {"backends": {"file": {"ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend"}}}
        )
        assert message.startswith("backends.file.OPTIONS: ")
        assert "missing required option(s) ['path']" in message

    def test_missing_required_keyword_only_options(self, helpers: str) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            instantiate({"ENGINE": f"{helpers}.Required", "OPTIONS": {}}, "root")
        assert str(info.value) == "root.OPTIONS: missing required option(s) ['needed', 'also']"

    def test_wrong_type_names_option_path(self) -> None:
        backends = openedx_backends(["a"])
        backends["tracking_logs"]["OPTIONS"]["backends"]["local"]["OPTIONS"]["max_event_size"] = (
            "big"
        )
        message = error_of({"backends": backends})
        assert message.startswith(
            "backends.tracking_logs.OPTIONS.backends.local.OPTIONS.max_event_size: "
        )
        assert "expected int | None" in message
        assert "'big'" in message

    @pytest.mark.parametrize(
        ("options", "fragment"),
        [
            ({"oversize": "explode"}, "one of 'drop', 'truncate'"),
            ({"level": 20}, "expected str"),
            ({"max_event_size": True}, "expected int | None"),
            ({"max_event_size": 1.5}, "expected int | None"),
        ],
    )
    def test_wrong_types_are_described(self, options: dict[str, Any], fragment: str) -> None:
        message = error_of({"backends": {"log": {"ENGINE": LOGGER, "OPTIONS": options}}})
        option = next(iter(options))
        assert message.startswith(f"backends.log.OPTIONS.{option}: ")
        assert fragment in message

    def test_wrong_type_for_keyword_only_option(self, helpers: str) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            instantiate(
                {"ENGINE": f"{helpers}.Required", "OPTIONS": {"needed": "1", "also": "a"}}, "r"
            )
        assert str(info.value).startswith("r.OPTIONS.needed: expected int, got str '1'")

    def test_int_accepted_for_float(self, helpers: str) -> None:
        built = instantiate(
            {"ENGINE": f"{helpers}.Required", "OPTIONS": {"needed": 1, "also": "a", "optional": 2}}
        )
        assert built.optional == 2

    def test_value_rejected_by_constructor_is_wrapped(self) -> None:
        message = error_of({"backends": {"log": {"ENGINE": LOGGER, "OPTIONS": {"level": "loud"}}}})
        assert message.startswith("backends.log: ")
        assert "rejected its options" in message
        assert "level" in message

    def test_processor_constructor_error_names_path(self) -> None:
        backends = openedx_backends(["a"])
        backends["segmentio"]["OPTIONS"]["processors"] = [
            {
                "ENGINE": "eventtracking.processors.regex_filter.RegexFilter",
                "OPTIONS": {"filter_type": "greylist", "regular_expressions": []},
            }
        ]
        message = error_of({"backends": backends})
        assert message.startswith("backends.segmentio.OPTIONS.processors.0: ")
        assert "'greylist'" in message

    def test_whitelist_given_a_string_is_reported(self) -> None:
        message = error_of({"backends": openedx_backends("edx.video.played")})  # type: ignore[arg-type]
        assert message.startswith("backends.segmentio.OPTIONS.processors.0: ")
        assert "whitelist" in message

    @pytest.mark.parametrize("spec", ["eventtracking.testing.InMemoryBackend", 3, ["ENGINE"]])
    def test_backend_not_a_mapping(self, spec: Any) -> None:
        message = error_of({"backends": {"x": spec}})
        assert message.startswith("backends.x: expected a mapping with ENGINE and OPTIONS")

    def test_missing_engine(self) -> None:
        message = error_of({"backends": {"x": {"OPTIONS": {}}}})
        assert message.startswith("backends.x: missing ENGINE")

    def test_unknown_component_keys(self) -> None:
        message = error_of({"backends": {"x": {"ENGINE": MEMORY, "OPTION": {}}}})
        assert message.startswith("backends.x: unknown keys ['OPTION']")

    def test_options_not_a_mapping(self) -> None:
        message = error_of({"backends": {"x": {"ENGINE": MEMORY, "OPTIONS": [1, 2]}}})
        assert message.startswith("backends.x.OPTIONS: must be a mapping")

    def test_backends_section_not_a_mapping(self) -> None:
        assert error_of({"backends": [{"ENGINE": MEMORY}]}).startswith(
            "backends: must be a mapping"
        )

    def test_processors_section_not_a_list(self) -> None:
        message = error_of({"processors": {"ENGINE": WHITELIST}})
        # A single component given where a list is expected.
        assert message.startswith("processors: must be a list")

    def test_processor_not_a_mapping(self) -> None:
        message = error_of({"processors": ["eventtracking.processors.redact.Redactor"]})
        assert message.startswith("processors.0: expected a mapping")

    def test_nested_backend_without_send(self, helpers: str) -> None:
        message = error_of(
            {
                "backends": {
                    "r": {
                        "ENGINE": ROUTING,
                        "OPTIONS": {"backends": {"bad": {"ENGINE": f"{helpers}.make_widget"}}},
                    }
                }
            }
        )
        assert message.startswith("backends.r: ")
        assert "'bad'" in message
        assert "send" in message

    def test_top_level_backend_without_send(self, helpers: str) -> None:
        message = error_of({"backends": {"bad": {"ENGINE": f"{helpers}.make_widget"}}})
        assert "'bad'" in message
        assert "send" in message

    def test_root_not_a_mapping(self) -> None:
        assert error_of(["backends"]).startswith("<root>: expected a mapping")
        with pytest.raises(ImproperlyConfigured, match=r"^<root>: expected a mapping"):
            instantiate("eventtracking.testing.InMemoryBackend")  # type: ignore[arg-type]

    def test_unknown_section(self) -> None:
        message = error_of({"backends": {}, "backend": {}})
        assert message.startswith("<root>: unknown section(s) ['backend']")

    @pytest.mark.parametrize(
        ("settings", "fragment"),
        [
            ({"envelope": "compact"}, "tracker.envelope"),
            ({"strict": "yes"}, "tracker.strict"),
            ({"verbose": True}, "unknown option(s) ['verbose']"),
            ("openedx", "tracker: must be a table"),
            ({"context_locator": "eventtracking.locator.Nope"}, "tracker.context_locator"),
        ],
    )
    def test_bad_tracker_options(self, settings: Any, fragment: str) -> None:
        assert fragment in error_of({"tracker": settings})


# -- TOML ---------------------------------------------------------------------------


TOML = r"""
[tracker]
envelope = "openedx"
strict = true
context_locator = "eventtracking.locator.ThreadLocalContextLocator"

[[processors]]
engine = "eventtracking.processors.redact.Redactor"

[backends.all]
engine = "eventtracking.testing.InMemoryBackend"

[backends.videos]
engine = "eventtracking.backends.routing.RoutingBackend"

[backends.videos.options.backends.memory]
engine = "eventtracking.testing.InMemoryBackend"
options = { maxlen = 10 }

[[backends.videos.options.processors]]
engine = "eventtracking.processors.regex_filter.RegexFilter"
options = { filter_type = "allowlist", regular_expressions = ['edx\.video\.'] }
"""


def write(tmp_path: Path, text: str, name: str = "tracking.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class TestLoadTracker:
    def test_builds_and_routes(self, tmp_path: Path) -> None:
        built = load_tracker(write(tmp_path, TOML))
        assert built.envelope == "openedx"
        assert built.strict is True
        assert isinstance(built.context_locator, ThreadLocalContextLocator)
        everything = built.get_backend("all")
        videos = built.get_backend("videos").backends["memory"]
        assert videos.maxlen == 10

        built.emit("edx.video.played", {"token": "t", "pos": 1})
        built.emit("edx.course.enrolled", {})
        assert everything.names() == ["edx.video.played", "edx.course.enrolled"]
        assert videos.names() == ["edx.video.played"]
        event = videos.events[0]
        assert set(event) == {"name", "timestamp", "data", "context"}  # openedx envelope
        assert event["data"] == {"token": MASK, "pos": 1}

    def test_strict_mode_from_toml_raises_on_bad_input(self, tmp_path: Path) -> None:
        built = load_tracker(write(tmp_path, TOML))
        with pytest.raises(EventError):
            built.emit("x", [1, 2])  # type: ignore[arg-type]

    def test_defaults_without_tracker_section(self, tmp_path: Path) -> None:
        built = load_tracker(
            write(tmp_path, '[backends.m]\nengine = "eventtracking.testing.InMemoryBackend"\n')
        )
        assert built.envelope == "full"
        assert built.strict is False
        built.emit("a", {})
        assert "id" in built.get_backend("m").events[0]

    def test_accepts_str_path(self, tmp_path: Path) -> None:
        path = write(tmp_path, '[backends.m]\nengine = "eventtracking.testing.InMemoryBackend"\n')
        assert isinstance(load_tracker(str(path)).get_backend("m"), InMemoryBackend)

    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.toml"
        with pytest.raises(ImproperlyConfigured) as info:
            load_tracker(missing)
        assert str(missing) in str(info.value)
        assert "not found" in str(info.value)

    def test_directory_instead_of_file(self, tmp_path: Path) -> None:
        with pytest.raises(ImproperlyConfigured, match="cannot read"):
            load_tracker(tmp_path)

    def test_invalid_toml(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[backends.m\nengine = \n")
        with pytest.raises(ImproperlyConfigured) as info:
            load_tracker(path)
        assert str(info.value).startswith(f"{path}: invalid TOML")

    def test_unknown_section(self, tmp_path: Path) -> None:
        path = write(tmp_path, '[backend.m]\nengine = "eventtracking.testing.InMemoryBackend"\n')
        with pytest.raises(ImproperlyConfigured) as info:
            load_tracker(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ")
        assert "unknown section(s) ['backend']" in message

    def test_error_inside_tree_names_file_and_path(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            '[backends.m]\nengine = "eventtracking.testing.InMemoryBackend"\n'
            "[backends.m.options]\nsize = 3\n",
        )
        with pytest.raises(ImproperlyConfigured) as info:
            load_tracker(path)
        assert str(info.value).startswith(f"{path}: backends.m.options: unknown option(s)")

    def test_bad_tracker_option_in_toml(self, tmp_path: Path) -> None:
        path = write(tmp_path, '[tracker]\nenvelope = "tiny"\n')
        with pytest.raises(ImproperlyConfigured, match=r"tracker\.envelope"):
            load_tracker(path)

    def test_jsonl_backend_from_toml(self, tmp_path: Path) -> None:
        out = tmp_path / "out" / "events.jsonl"
        path = write(
            tmp_path,
            "[backends.file]\n"
            'engine = "eventtracking.backends.jsonl.JSONLinesBackend"\n'
            f"options = {{ path = {json.dumps(str(out))}, autoflush = true }}\n",
        )
        built = load_tracker(path)
        assert isinstance(built.get_backend("file"), JSONLinesBackend)
        built.emit("a.b", {"x": 1})
        built.close()
        lines = out.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["data"] for line in lines] == [{"x": 1}]


# -- EVENTTRACKING_CONFIG and the default tracker -------------------------------------


@pytest.fixture
def no_default_tracker() -> Iterator[None]:
    tracker.TRACKERS.pop(tracker.DEFAULT_TRACKER_NAME, None)
    yield
    tracker.TRACKERS.pop(tracker.DEFAULT_TRACKER_NAME, None)


@pytest.mark.usefixtures("no_default_tracker")
class TestDefaultTrackerFromEnvironment:
    def test_env_var_file_builds_the_default_tracker(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = write(tmp_path, TOML)
        monkeypatch.setenv("EVENTTRACKING_CONFIG", str(path))
        default = track.get_tracker()
        assert default is track.get_tracker()
        assert tracker.TRACKERS[tracker.DEFAULT_TRACKER_NAME] is default
        assert default.envelope == "openedx"
        track.emit("edx.video.played", {"pos": 2})
        assert default.get_backend("videos").backends["memory"].names() == ["edx.video.played"]

    def test_without_env_var_default_logs_to_tracking(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("EVENTTRACKING_CONFIG", raising=False)
        default = track.get_tracker()
        backend = default.get_backend("tracking")
        assert isinstance(backend, LoggerBackend)
        assert backend.event_logger.name == "tracking"

    def test_bad_env_file_raises_and_registers_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("EVENTTRACKING_CONFIG", str(tmp_path / "missing.toml"))
        with pytest.raises(ImproperlyConfigured, match="not found"):
            track.get_tracker()
        assert tracker.DEFAULT_TRACKER_NAME not in tracker.TRACKERS

    def test_registered_tracker_wins_over_env_var(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("EVENTTRACKING_CONFIG", str(tmp_path / "missing.toml"))
        mine = tracker_from_config({"backends": {"m": {"ENGINE": MEMORY}}})
        tracker.register_tracker(mine)
        assert track.get_tracker() is mine

    def test_other_names_are_key_errors(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("EVENTTRACKING_CONFIG", raising=False)
        with pytest.raises(KeyError):
            tracker.get_tracker("no-such-tracker-name")
