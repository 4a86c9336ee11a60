"""Fuzz targets: the browser's JSON payload parser and the journal reader (hypothesis).

They run with every ``make test`` for a bounded time (a fixed number of
examples each, a few seconds in all). ``EVENTTRACKING_FUZZ_EXAMPLES=N`` runs
N examples per target instead, for a longer session by hand.

- `parse_events` / `load_json`: any bytes give checked events or a 4xx
  `PayloadError`, nothing else; what is accepted keeps every integer exact.
- `read_segment` / `Journal`: any segment file, however damaged, reads back a
  prefix of the records written before the damage and never raises.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import django_support  # noqa: F401  (configures Django: the payload module reads its settings)
from eventtracking.delivery.journal import Journal
from eventtracking.delivery.lanes import Lane
from eventtracking.delivery.segments import MAGIC, frame, read_segment
from eventtracking.django.conf import BrowserConf
from eventtracking.django.payload import BrowserEvent, PayloadError, load_json, parse_events

EXAMPLES = int(os.environ.get("EVENTTRACKING_FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = BrowserConf(name_patterns=(re.compile(r"^client\."),), max_body_bytes=4096)

# -- the payload parser ------------------------------------------------------------------

integers = st.integers(min_value=-(2**80), max_value=2**80)
floats = st.floats(allow_nan=False, allow_infinity=False)  # what JSON can carry
scalars = st.none() | st.booleans() | integers | floats | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
events = st.fixed_dictionaries(
    {"name": st.sampled_from(["client.a", "client.b.c", "server.x", ""]) | st.text(max_size=10)},
    optional={
        "data": values,
        "context": values,
        "page": st.text(max_size=20) | integers,
        "timestamp": st.text(max_size=10) | integers,
        "ip": st.text(max_size=5),
    },
)
documents = (
    events
    | st.lists(events, max_size=8)
    | st.fixed_dictionaries({"events": st.lists(events, max_size=8)})
    | values
)


def mutated(text: bytes, data: st.DataObject) -> bytes:
    """`text` with a few bytes changed, cut or inserted (JSON that is almost right)."""
    body = bytearray(text)
    for _ in range(data.draw(st.integers(0, 3))):
        if not body:
            break
        at = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            body[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del body[at:]
        else:
            body[at:at] = data.draw(
                st.sampled_from([b"9" * 25, b"\x00", b"\\u0000", b"{", b"]", b"\xff"])
            )
    return bytes(body)


def check_parse(body: bytes) -> None:
    try:
        parsed = parse_events(body, LIMITS)
    except PayloadError as exc:
        assert 400 <= exc.status < 500 and exc.code and exc.detail
        return
    assert parsed and all(isinstance(e, BrowserEvent) for e in parsed)
    assert all(e.name.startswith("client.") for e in parsed)
    try:
        exact = json.loads(body)  # the standard library keeps integers exact
    except ValueError:
        return
    kept = [[e.data, e.context, e.timestamp] for e in parsed]
    assert sorted(_integers(kept)) == sorted(_integers(exact))  # none became a float


def _integers(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _integers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _integers(v)]
    return []


@FUZZ
@given(body=st.binary(max_size=300))
def test_fuzz_payload_parser_with_any_bytes(body: bytes) -> None:
    check_parse(body)


@FUZZ
@given(document=documents, data=st.data())
def test_fuzz_payload_parser_with_almost_valid_json(document: Any, data: st.DataObject) -> None:
    text = json.dumps(document).encode()
    check_parse(mutated(text, data))


@FUZZ
@given(document=values)
def test_fuzz_accepted_json_keeps_every_integer_exact(document: Any) -> None:
    text = json.dumps(document).encode()
    try:
        parsed = load_json(text, "the body")
    except PayloadError as exc:
        assert exc.code == "integer_too_large"
        assert any(not -(2**63) <= n <= 2**64 - 1 for n in _integers(document))
        return
    assert _integers(parsed) == _integers(document)
    assert parsed == json.loads(text)


# -- the journal reader --------------------------------------------------------------------

records = st.lists(st.binary(max_size=60), min_size=0, max_size=20)


@FUZZ
@given(written=records, data=st.data())
def test_fuzz_segment_reader_returns_a_prefix_and_never_raises(
    written: list[bytes], data: st.DataObject
) -> None:
    good = MAGIC + b"".join(frame(r) for r in written)
    damaged = mutated(good, data) + data.draw(st.sampled_from([b"", b"\x00" * 64, b"\x01"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "000000000001.seg"
        path.write_bytes(damaged)
        offset, got = 0, []
        for _ in range(len(damaged) + 2):  # each read moves on, or ends the segment
            read = read_segment(path, offset, max_records=data.draw(st.integers(1, 5)))
            got += read.payloads
            assert read.status in ("more", "end", "corrupt")
            if read.status != "more":
                break
            assert read.offset > offset
            offset = read.offset
        else:
            raise AssertionError("the reader did not finish")
    # Whatever is read back passed its checksum: a record that is in the file as written.
    assert all(frame(g) in damaged for g in got)
    if damaged.startswith(good):  # only a tail was added: everything written comes back
        assert got == written


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_segment_reader_with_any_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in (b"", MAGIC):
            path = Path(tmp) / "000000000001.seg"
            path.write_bytes(prefix + data)
            read = read_segment(path, 0, max_records=1000)
            assert read.status in ("more", "end", "corrupt")


@settings(FUZZ, max_examples=max(EXAMPLES // 8, 20))
@given(written=records, data=st.data())
def test_fuzz_journal_adopts_a_damaged_dead_lane_without_raising(
    written: list[bytes], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lane = Lane.create(root)
        good = MAGIC + b"".join(frame(r) for r in written)
        (lane.path / "000000000001.seg").write_bytes(mutated(good, data))
        lane.release()  # the process is gone
        journal = Journal(root, fsync_always=False, segment_bytes=1 << 16, disk_budget=1 << 24)
        got: list[bytes] = []
        for _ in range(len(written) + 5):
            batch = journal.read(data.draw(st.integers(1, 4)), None)
            if batch is None:
                break
            got += batch.payloads
            journal.commit(batch)
        journal.close()
        assert all(g in written for g in got)
