"""Tests for the processors: whitelist, regex filter, redaction, sampling, and their routing."""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from eventtracking import diagnostics
from eventtracking.backends.routing import RoutingBackend
from eventtracking.exceptions import ImproperlyConfigured
from eventtracking.processors import (
    EventEmissionExit,
    NameWhitelistProcessor,
    Redactor,
    RegexFilter,
    Sampler,
)
from eventtracking.processors.redact import MASK
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    diagnostics.reset()
    yield
    diagnostics.reset()


def make_event(name: str = "edx.test", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"name": name, "data": {}, "context": {}}
    event.update(extra)
    return event


# -- NameWhitelistProcessor -------------------------------------------------------


class TestNameWhitelistProcessor:
    def test_listed_name_passes_unchanged(self) -> None:
        processor = NameWhitelistProcessor(whitelist=["a.b", "c.d"])
        event = make_event("c.d", data={"x": 1})
        assert processor(event) is event
        assert event == make_event("c.d", data={"x": 1})

    def test_unlisted_name_raises_emission_exit(self) -> None:
        processor = NameWhitelistProcessor(whitelist=["a.b"])
        with pytest.raises(EventEmissionExit):
            processor(make_event("a.bc"))

    def test_match_is_exact_not_prefix_or_case_insensitive(self) -> None:
        processor = NameWhitelistProcessor(whitelist=["a.b"])
        for name in ("a", "a.b.c", "A.B", " a.b"):
            with pytest.raises(EventEmissionExit):
                processor(make_event(name))

    def test_empty_whitelist_drops_everything(self) -> None:
        processor = NameWhitelistProcessor(whitelist=[])
        with pytest.raises(EventEmissionExit):
            processor(make_event("a.b"))

    @pytest.mark.parametrize(
        "whitelist", [["a.b", "x"], ("a.b", "x"), {"a.b", "x"}, frozenset({"a.b", "x"})]
    )
    def test_accepts_any_collection(self, whitelist: Any) -> None:
        processor = NameWhitelistProcessor(whitelist=whitelist)
        assert processor(make_event("a.b"))["name"] == "a.b"
        assert processor.whitelist == frozenset({"a.b", "x"})

    def test_accepts_a_generator(self) -> None:
        processor = NameWhitelistProcessor(whitelist=(n for n in ["a.b"]))
        assert processor(make_event("a.b"))["name"] == "a.b"

    @pytest.mark.parametrize("whitelist", ["a.b", b"a.b", None, 42])
    def test_string_none_or_non_iterable_is_type_error(self, whitelist: Any) -> None:
        with pytest.raises(TypeError, match="whitelist"):
            NameWhitelistProcessor(whitelist=whitelist)

    def test_no_argument_is_type_error(self) -> None:
        with pytest.raises(TypeError):
            NameWhitelistProcessor()

    def test_unknown_options_are_ignored(self) -> None:
        # Open edX passes extra options through to processors.
        processor = NameWhitelistProcessor(whitelist=["a"], something_else=1)
        assert processor(make_event("a"))["name"] == "a"

    def test_filters_a_list_of_events(self) -> None:
        processor = NameWhitelistProcessor(whitelist=["keep", "also"])
        events = [make_event("keep"), make_event("drop"), make_event("also"), make_event("x")]
        kept = processor(events)
        assert [e["name"] for e in kept] == ["keep", "also"]
        assert kept[0] is events[0]
        assert kept[1] is events[2]

    def test_list_with_nothing_allowed_gives_an_empty_list_as_in_open_edx(self) -> None:
        # Libraries that batch (event-routing-backends) expect [] here, not an exception.
        processor = NameWhitelistProcessor(whitelist=["keep"])
        assert processor([make_event("a"), make_event("b")]) == []


# -- RegexFilter ----------------------------------------------------------------


class TestRegexFilter:
    def test_allowlist_keeps_matching_and_drops_others(self) -> None:
        processor = RegexFilter("allowlist", [r"edx\.video\."])
        event = make_event("edx.video.played")
        assert processor(event) is event
        with pytest.raises(EventEmissionExit):
            processor(make_event("edx.course.enrollment.activated"))

    def test_blocklist_drops_matching_and_keeps_others(self) -> None:
        processor = RegexFilter("blocklist", [r"edx\.video\."])
        with pytest.raises(EventEmissionExit):
            processor(make_event("edx.video.played"))
        event = make_event("edx.course.enrollment.activated")
        assert processor(event) is event

    def test_match_is_anchored_at_start_of_name(self) -> None:
        allow = RegexFilter("allowlist", ["video"])
        with pytest.raises(EventEmissionExit):
            allow(make_event("edx.video.played"))  # re.search would match; re.match does not
        assert allow(make_event("video.played"))["name"] == "video.played"
        block = RegexFilter("blocklist", ["video"])
        assert block(make_event("edx.video.played"))["name"] == "edx.video.played"

    def test_end_anchor_alone_does_not_search(self) -> None:
        # re.match: "b$" only matches a name that is exactly "b".
        processor = RegexFilter("allowlist", ["b$"])
        assert processor(make_event("b"))["name"] == "b"
        with pytest.raises(EventEmissionExit):
            processor(make_event("xxb"))

    def test_match_is_not_anchored_at_end(self) -> None:
        processor = RegexFilter("allowlist", ["edx"])
        assert processor(make_event("edx.anything.else"))["name"] == "edx.anything.else"

    def test_several_expressions_any_match_counts(self) -> None:
        allow = RegexFilter("allowlist", [r"^a\.", r".*b$", r"c\.\d+"])
        for name in ("a.x", "xxb", "c.12"):
            assert allow(make_event(name))["name"] == name
        for name in ("x.a.", "bx", "c.x"):
            with pytest.raises(EventEmissionExit):
                allow(make_event(name))
        block = RegexFilter("blocklist", [r"^a\.", r".*b$"])
        for name in ("a.x", "xxb"):
            with pytest.raises(EventEmissionExit):
                block(make_event(name))
        assert block(make_event("c"))["name"] == "c"

    def test_empty_allowlist_drops_and_empty_blocklist_keeps(self) -> None:
        with pytest.raises(EventEmissionExit):
            RegexFilter("allowlist", [])(make_event("a"))
        assert RegexFilter("blocklist", [])(make_event("a"))["name"] == "a"

    def test_expressions_kept_in_given_order(self) -> None:
        processor = RegexFilter("allowlist", ["b", "a"])
        assert [p.pattern for p in processor.compiled_expressions] == ["b", "a"]

    @pytest.mark.parametrize("filter_type", ["whitelist", "ALLOWLIST", "", None, "deny"])
    def test_bad_filter_type_is_improperly_configured(self, filter_type: Any) -> None:
        with pytest.raises(ImproperlyConfigured, match="filter_type") as info:
            RegexFilter(filter_type, ["a"])
        assert repr(filter_type) in str(info.value)

    def test_invalid_regex_names_the_bad_expression(self) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            RegexFilter("allowlist", ["fine", "(unclosed", "also[fine]"])
        message = str(info.value)
        assert "'(unclosed'" in message
        assert "'fine'" not in message

    def test_every_invalid_regex_is_named(self) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            RegexFilter("blocklist", ["(a", "b[", "ok"])
        assert "'(a'" in str(info.value)
        assert "'b['" in str(info.value)

    @pytest.mark.parametrize("bad", [1, None, ["nested"], b"bytes"])
    def test_non_string_expression_is_improperly_configured(self, bad: Any) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            RegexFilter("allowlist", ["a", bad])
        assert repr(bad) in str(info.value)

    def test_single_string_instead_of_list_is_improperly_configured(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="list"):
            RegexFilter("allowlist", "edx.*")


# -- Redactor -------------------------------------------------------------------


class TestRedactor:
    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "new_password",
            "secret",
            "client_secret",
            "token",
            "access_token",
            "refresh_token",
            "cookie",
            "Cookie",
            "Authorization",
            "HTTP_AUTHORIZATION",
            "csrf",
            "csrfmiddlewaretoken",
            "X-CSRFToken",
            "PASSWORD",
        ],
    )
    def test_default_patterns_mask_secret_keys_in_data(self, key: str) -> None:
        event = make_event(data={key: "hunter2", "visible": "ok"})
        out = Redactor()(event)
        assert out["data"] == {key: MASK, "visible": "ok"}

    def test_default_patterns_mask_in_context(self) -> None:
        event = make_event(context={"user_id": 7, "cookie": "abc", "Authorization": "Bearer x"})
        out = Redactor()(event)
        assert out["context"] == {"user_id": 7, "cookie": MASK, "Authorization": MASK}

    def test_non_secret_keys_are_left_alone(self) -> None:
        data = {"url": "http://x", "user_id": 3, "course_id": "c", "passage": "p", "tok": 1}
        event = make_event(data=dict(data))
        assert Redactor()(event)["data"] == data

    def test_masks_at_any_depth_including_inside_lists(self) -> None:
        event = make_event(
            data={
                "request": {"headers": {"Cookie": "c", "Accept": "a"}},
                "forms": [{"password": "p", "name": "n"}, "plain", [{"secret": 1}]],
            },
            context={"deep": {"deeper": {"deepest": {"access_token": "t", "ok": True}}}},
        )
        out = Redactor()(event)
        assert out["data"] == {
            "request": {"headers": {"Cookie": MASK, "Accept": "a"}},
            "forms": [{"password": MASK, "name": "n"}, "plain", [{"secret": MASK}]],
        }
        assert out["context"] == {
            "deep": {"deeper": {"deepest": {"access_token": MASK, "ok": True}}}
        }

    def test_whole_value_of_a_secret_key_is_masked_even_if_nested(self) -> None:
        event = make_event(data={"secret": {"a": 1, "b": [1, 2]}})
        assert Redactor()(event)["data"] == {"secret": MASK}

    def test_other_top_level_fields_are_not_searched_by_default(self) -> None:
        event = make_event(data={}, extra={"password": "p"})
        assert Redactor()(event)["extra"] == {"password": "p"}

    def test_fields_choose_the_parts_searched(self) -> None:
        event = make_event(data={"password": "p"}, context={"password": "p"})
        out = Redactor(fields=["context"])(event)
        assert out["data"] == {"password": "p"}
        assert out["context"] == {"password": MASK}

    def test_custom_patterns_replace_defaults(self) -> None:
        event = make_event(data={"ssn": "123", "password": "p", "SSN_LAST4": "4"})
        out = Redactor(patterns=["ssn"])(event)
        assert out["data"] == {"ssn": MASK, "password": "p", "SSN_LAST4": MASK}

    def test_extra_patterns_add_to_defaults(self) -> None:
        event = make_event(data={"ssn": "123", "password": "p", "name": "n"})
        out = Redactor(extra_patterns=[r"^ssn$"])(event)
        assert out["data"] == {"ssn": MASK, "password": MASK, "name": "n"}

    def test_custom_patterns_are_case_insensitive_regexes(self) -> None:
        event = make_event(data={"Email_Address": "e", "emailing": "x", "mail": "m"})
        out = Redactor(patterns=[r"email_?address"])(event)
        assert out["data"] == {"Email_Address": MASK, "emailing": "x", "mail": "m"}

    def test_patterns_are_independent_regexes(self) -> None:
        # Inline flags, backreferences and repeated group names are valid in
        # each pattern alone and must not clash with one another.
        redactor = Redactor(patterns=[r"(?i)^pin$", r"(a)\1", r"(?P<g>ssn)", r"(?P<g>iban)"])
        event = make_event(data={"PIN": 1, "aa": 2, "ab": 3, "ssn": 4, "iban": 5, "x": 6})
        assert redactor(event)["data"] == {
            "PIN": MASK,
            "aa": MASK,
            "ab": 3,
            "ssn": MASK,
            "iban": MASK,
            "x": 6,
        }

    def test_custom_mask(self) -> None:
        out = Redactor(mask=None)(make_event(data={"token": "t"}))
        assert out["data"] == {"token": None}

    def test_non_string_keys_are_not_matched(self) -> None:
        event = make_event(data={1: "one", "token": "t"})
        assert Redactor()(event)["data"] == {1: "one", "token": MASK}

    def test_redacts_a_list_of_events(self) -> None:
        events = [make_event(data={"password": "p"}), make_event(data={"ok": 1})]
        out = Redactor()(events)
        assert [e["data"] for e in out] == [{"password": MASK}, {"ok": 1}]

    def test_copy_on_write_leaves_callers_nested_dicts_untouched(self) -> None:
        headers = {"Cookie": "c", "Accept": "a"}
        forms = [{"password": "p"}, {"name": "n"}]
        untouched = {"a": {"b": [1, 2, {"c": 3}]}}
        data = {"headers": headers, "forms": forms, "untouched": untouched}
        context = {"user_id": 1, "session": {"csrf": "x"}}
        event = make_event(data=data, context=context)
        before = copy.deepcopy({"data": data, "context": context})

        out = Redactor()(event)

        # The caller's objects still hold the secrets.
        assert {"data": data, "context": context} == before
        assert headers["Cookie"] == "c"
        assert forms[0]["password"] == "p"
        # The result is redacted through copies of the paths that held secrets...
        assert out["data"] is not data
        assert out["data"]["headers"] is not headers
        assert out["data"]["forms"] is not forms
        assert out["context"] is not context
        assert out["data"]["headers"]["Cookie"] == MASK
        assert out["data"]["forms"][0]["password"] == MASK
        assert out["context"]["session"]["csrf"] == MASK
        # ...while subtrees without secrets are the very same objects.
        assert out["data"]["untouched"] is untouched
        assert out["data"]["forms"][1] is forms[1]

    def test_nothing_secret_means_nothing_copied(self) -> None:
        data = {"a": {"b": 1}, "l": [1, {"x": 2}]}
        context = {"user_id": 1}
        event = make_event(data=data, context=context)
        out = Redactor()(event)
        assert out["data"] is data
        assert out["context"] is context

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"patterns": "password"}, "list of strings"),
            ({"extra_patterns": "ssn"}, "list of strings"),
            ({"patterns": []}, "at least one"),
            ({"patterns": ["ok", "(bad"]}, "'(bad'"),
            ({"extra_patterns": ["[x"]}, "'[x'"),
            ({"patterns": ["ok", 3]}, "3"),
        ],
    )
    def test_bad_patterns_are_improperly_configured(
        self, kwargs: dict[str, Any], fragment: str
    ) -> None:
        with pytest.raises(ImproperlyConfigured) as info:
            Redactor(**kwargs)
        assert fragment in str(info.value)


# -- Sampler --------------------------------------------------------------------


def sample_events(n: int, name: str = "edx.video.played") -> list[dict[str, Any]]:
    return [make_event(name, id=str(uuid.UUID(int=i * 7919 + 1, version=4))) for i in range(n)]


def kept_count(sampler: Sampler, events: list[dict[str, Any]]) -> int:
    kept = 0
    for event in events:
        try:
            sampler(event)
        except EventEmissionExit:
            continue
        kept += 1
    return kept


class TestSampler:
    def test_rate_zero_drops_everything(self) -> None:
        events = sample_events(200)
        assert kept_count(Sampler({"edx.*": 0.0}), events) == 0
        assert kept_count(Sampler({}, default=0), events) == 0

    def test_rate_one_keeps_everything(self) -> None:
        events = sample_events(200)
        sampler = Sampler({"edx.*": 1.0})
        for event in events:
            assert sampler(event) is event
        assert kept_count(Sampler({}, default=1), events) == 200

    def test_default_rate_is_keep_all(self) -> None:
        assert kept_count(Sampler({"other.*": 0.0}), sample_events(100)) == 100

    def test_partial_rate_keeps_roughly_that_share(self) -> None:
        events = sample_events(10_000)
        kept = kept_count(Sampler({"edx.video.*": 0.3}), events)
        assert 2_500 <= kept <= 3_500

    def test_partial_rate_with_random_ids(self) -> None:
        events = [make_event("e", id=str(uuid.uuid4())) for _ in range(10_000)]
        kept = kept_count(Sampler({}, default=0.3), events)
        assert 2_500 <= kept <= 3_500

    def test_decision_is_deterministic_across_instances(self) -> None:
        events = sample_events(2_000)
        first = Sampler({"edx.*": 0.5})
        second = Sampler({"edx.*": 0.5})
        decisions_1 = [first.keeps(e) for e in events]
        decisions_2 = [second.keeps(e) for e in events]
        assert decisions_1 == decisions_2
        assert 0 < sum(decisions_1) < len(events)  # both outcomes occur

    def test_decision_depends_on_id_not_on_payload(self) -> None:
        sampler = Sampler({}, default=0.5)
        events = sample_events(200)
        for event in events:
            twin = dict(event, data={"other": "payload"}, context={"user_id": 9})
            assert sampler.keeps(event) == sampler.keeps(twin)

    def test_higher_rate_keeps_a_superset(self) -> None:
        # The same hash against a higher threshold: an event kept at 0.2 is kept at 0.6.
        events = sample_events(2_000)
        low, high = Sampler({}, default=0.2), Sampler({}, default=0.6)
        kept_low = {e["id"] for e in events if low.keeps(e)}
        kept_high = {e["id"] for e in events if high.keeps(e)}
        assert kept_low < kept_high

    def test_event_without_id_uses_name_and_timestamp(self) -> None:
        sampler = Sampler({}, default=0.5)
        decisions = {
            sampler.keeps({"name": "n", "timestamp": f"2024-01-01T00:00:{i:02d}"})
            for i in range(60)
        }
        assert decisions == {True, False}
        event = {"name": "n", "timestamp": "2024-01-01T00:00:00"}
        assert Sampler({}, default=0.5).keeps(event) == sampler.keeps(dict(event))

    def test_first_matching_pattern_wins(self) -> None:
        video = make_event("edx.video.played", id="1")
        course = make_event("edx.course.enrolled", id="2")
        specific_first = Sampler({"edx.video.*": 0.0, "edx.*": 1.0})
        assert not specific_first.keeps(video)
        assert specific_first.keeps(course)
        general_first = Sampler({"edx.*": 1.0, "edx.video.*": 0.0})
        assert general_first.keeps(video)
        assert general_first.keeps(course)

    def test_unmatched_names_use_default(self) -> None:
        sampler = Sampler({"edx.*": 1.0}, default=0.0)
        assert sampler.keeps(make_event("edx.a", id="1"))
        assert not sampler.keeps(make_event("other.a", id="1"))

    def test_explicit_star_pattern_is_honoured(self) -> None:
        assert not Sampler({"*": 0.0}).keeps(make_event("anything", id="1"))
        # An explicit "*" placed first wins over later, more specific patterns.
        sampler = Sampler({"*": 0.0, "edx.*": 1.0})
        assert not sampler.keeps(make_event("edx.a", id="1"))

    def test_glob_syntax(self) -> None:
        sampler = Sampler({"edx.video.?layed": 0.0, "a[bc].x": 0.0}, default=1.0)
        assert not sampler.keeps(make_event("edx.video.played", id="1"))
        assert sampler.keeps(make_event("edx.video.paused", id="1"))
        assert not sampler.keeps(make_event("ab.x", id="1"))
        assert sampler.keeps(make_event("ad.x", id="1"))

    @pytest.mark.parametrize("rate", [-0.1, 1.01, 2, "0.5", None, True, False, float("nan")])
    def test_bad_rate_is_improperly_configured(self, rate: Any) -> None:
        with pytest.raises(ImproperlyConfigured, match="edx"):
            Sampler({"edx.*": rate})

    @pytest.mark.parametrize("rate", [-1, 1.5, "1", None])
    def test_bad_default_is_improperly_configured(self, rate: Any) -> None:
        with pytest.raises(ImproperlyConfigured):
            Sampler({}, default=rate)

    @pytest.mark.parametrize("rates", [[("edx.*", 0.5)], "edx.*", None])
    def test_rates_must_be_a_mapping(self, rates: Any) -> None:
        with pytest.raises(ImproperlyConfigured, match="mapping"):
            Sampler(rates)

    def test_non_string_pattern_is_improperly_configured(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="string"):
            Sampler({1: 0.5})  # type: ignore[dict-item]

    def test_dropped_events_are_counted(self) -> None:
        events = sample_events(1_000)
        sampler = Sampler({}, default=0.4)
        kept = kept_count(sampler, events)
        assert diagnostics.snapshot().get("sampler.dropped", 0) == 1_000 - kept
        assert 0 < kept < 1_000

    def test_kept_events_are_not_counted(self) -> None:
        kept_count(Sampler({}, default=1.0), sample_events(50))
        assert "sampler.dropped" not in diagnostics.snapshot()


# -- processors inside a Tracker with routing -------------------------------------


def raising_processor(event: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("boom in processor")


def tag_processor(event: dict[str, Any]) -> None:
    event["data"]["tagged"] = True


class TestProcessorsInRouting:
    def test_processor_exception_is_logged_and_chain_goes_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        memory = InMemoryBackend()
        tracker = Tracker({"mem": memory}, processors=[raising_processor, tag_processor])
        with caplog.at_level(logging.WARNING, logger="eventtracking"):
            tracker.emit("a.b", {"x": 1})
        assert len(memory.events) == 1
        assert memory.events[0]["data"] == {"x": 1, "tagged": True}
        assert diagnostics.snapshot()["processor.errors"] == 1
        # Open edX's line, on Open edX's logger
        failures = [
            r
            for r in caplog.records
            if r.name == "eventtracking.backends.routing"
            and r.getMessage().startswith("Failed to execute processor: ")
        ]
        assert failures, caplog.text
        assert failures[0].exc_info is not None
        assert "boom in processor" in caplog.text

    def test_emission_exit_drops_and_stops_the_chain(self) -> None:
        memory = InMemoryBackend()
        seen: list[str] = []

        def later(event: dict[str, Any]) -> None:
            seen.append(event["name"])

        tracker = Tracker(
            {"mem": memory}, processors=[NameWhitelistProcessor(whitelist=["keep"]), later]
        )
        tracker.emit("drop", {})
        tracker.emit("keep", {})
        assert memory.names() == ["keep"]
        assert seen == ["keep"]

    def test_processor_returning_a_new_event_replaces_it(self) -> None:
        memory = InMemoryBackend()

        def replace(event: dict[str, Any]) -> dict[str, Any]:
            return {**event, "name": "renamed"}

        Tracker({"mem": memory}, processors=[replace]).emit("orig", {})
        assert memory.names() == ["renamed"]

    def test_real_processors_in_an_openedx_style_tree(self) -> None:
        kept_all = InMemoryBackend()
        filtered = InMemoryBackend()
        tracker = Tracker(
            {
                "local": kept_all,
                "segmentio": RoutingBackend(
                    backends={"mem": filtered},
                    processors=[
                        RegexFilter("blocklist", [r"edx\.internal\."]),
                        Redactor(),
                        Sampler({"edx.noisy.*": 0.0}),
                    ],
                ),
            }
        )
        tracker.emit("edx.internal.tick", {"password": "p"})
        tracker.emit("edx.noisy.ping", {})
        tracker.emit("edx.video.played", {"token": "t", "pos": 3})
        assert kept_all.names() == ["edx.internal.tick", "edx.noisy.ping", "edx.video.played"]
        assert filtered.names() == ["edx.video.played"]
        assert filtered.events[0]["data"] == {"token": MASK, "pos": 3}
        # The unfiltered branch still sees the secret: redaction was branch-local.
        assert kept_all.events[2]["data"] == {"token": "t", "pos": 3}
        assert diagnostics.snapshot()["sampler.dropped"] == 1

    @pytest.mark.parametrize("mutating_branch", ["a", "z"])
    def test_mutation_in_one_branch_is_invisible_to_siblings_and_caller(
        self, mutating_branch: str
    ) -> None:
        def mutate(event: dict[str, Any]) -> None:
            event["name"] = "mutated"
            event["data"]["url"] = "changed"
            event["data"]["added"] = 1
            del event["data"]["keep"]
            event["context"]["user_id"] = -1
            event["context"]["extra"] = "x"

        mutated_mem, plain_mem, processed_mem = (
            InMemoryBackend(),
            InMemoryBackend(),
            (InMemoryBackend()),
        )
        other_branch = "z" if mutating_branch == "a" else "a"
        tracker = Tracker(
            {
                mutating_branch: RoutingBackend(backends={"m": mutated_mem}, processors=[mutate]),
                other_branch: RoutingBackend(backends={"m": plain_mem}),
                "m-other-with-processor": RoutingBackend(
                    backends={"m": processed_mem}, processors=[lambda e: None]
                ),
            }
        )
        data = {"url": "http://x", "keep": True}
        with tracker.context("outer", {"user_id": 10938}):
            tracker.emit("navigation.request", data)

        assert data == {"url": "http://x", "keep": True}
        assert mutated_mem.events[0]["name"] == "mutated"
        assert mutated_mem.events[0]["data"] == {"url": "changed", "added": 1}
        assert mutated_mem.events[0]["context"] == {"user_id": -1, "extra": "x"}
        for memory in (plain_mem, processed_mem):
            event = memory.events[0]
            assert event["name"] == "navigation.request"
            assert event["data"] == {"url": "http://x", "keep": True}
            assert event["context"] == {"user_id": 10938}

    def test_top_level_processor_mutation_does_not_touch_callers_data(self) -> None:
        memory = InMemoryBackend()
        tracker = Tracker({"mem": memory}, processors=[tag_processor])
        data = {"x": 1}
        tracker.emit("a", data)
        assert data == {"x": 1}
        assert memory.events[0]["data"] == {"x": 1, "tagged": True}

    def test_redactor_in_routing_keeps_callers_nested_data(self) -> None:
        memory = InMemoryBackend()
        tracker = Tracker({"mem": memory}, processors=[Redactor()])
        nested = {"password": "p", "ok": 1}
        data = {"form": nested}
        tracker.emit("login", data)
        assert nested == {"password": "p", "ok": 1}
        assert data == {"form": nested}
        assert memory.events[0]["data"] == {"form": {"password": MASK, "ok": 1}}

    def test_whitelist_on_a_batch_through_routing(self) -> None:
        memory = InMemoryBackend()
        routing = RoutingBackend(
            backends={"mem": memory}, processors=[NameWhitelistProcessor(whitelist=["k"])]
        )
        routing.send_batch([make_event("k"), make_event("d"), make_event("k")])
        assert memory.names() == ["k", "k"]


def test_redactor_masks_card_numbers_and_security_codes_without_false_friends() -> None:
    from eventtracking.processors.redact import Redactor as _Redactor

    event = {
        "data": {"card_number": "4111", "cardNumber": "4111", "cvv": "1", "discard_no": 3},
        "context": {},
    }
    out = _Redactor()(event)["data"]
    assert out == {
        "card_number": "[REDACTED]",
        "cardNumber": "[REDACTED]",
        "cvv": "[REDACTED]",
        "discard_no": 3,
    }
