"""Event ids: UUIDv7, time-ordered, unique across threads and forked processes."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

import eventtracking.event as event_module
from eventtracking.event import event_id_time, new_event_id


def test_ids_are_version_7_rfc_variant() -> None:
    value = uuid.UUID(new_event_id())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_strictly_increase_within_a_process() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_id_encodes_its_creation_time() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    created = event_id_time(new_event_id())
    assert before <= created <= datetime.now(UTC) + timedelta(milliseconds=5)


def test_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def make(slot: list[str]) -> None:
        slot.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(slot,)) for slot in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for slot in results for i in slot]
    assert len(set(everything)) == len(everything)
    for slot in results:  # each thread still sees increasing ids
        assert slot == sorted(slot)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_children_do_not_repeat_the_parents_ids() -> None:
    new_event_id()  # the generator state is now shared with any child
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        os.write(write_fd, "\n".join(new_event_id() for _ in range(200)).encode())
        os._exit(0)
    os.close(write_fd)
    parent_ids = {new_event_id() for _ in range(200)}
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    child_ids = set(b"".join(chunks).decode().split("\n"))
    assert len(child_ids) == 200
    assert not parent_ids & child_ids
    # random tails differ too, not only the sequence numbers
    assert not {i[19:] for i in parent_ids} & {i[19:] for i in child_ids}


def test_a_burst_beyond_the_sequence_space_stays_ordered() -> None:
    ids = [new_event_id() for _ in range(50_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.fixture
def fresh_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids made for a future time move the generator ahead; put it back afterwards."""
    monkeypatch.setattr(event_module, "_state", event_module._state)


@pytest.mark.usefixtures("fresh_ids")
def test_an_id_made_for_a_time_carries_that_millisecond() -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=123_456)
    made = event_id_time(new_event_id(later))
    assert made == later.replace(microsecond=123_000)


@pytest.mark.usefixtures("fresh_ids")
def test_ids_keep_increasing_when_the_clock_steps_back() -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    ahead = new_event_id(start)
    behind = [new_event_id(start - timedelta(seconds=30)) for _ in range(5_000)]
    assert [ahead, *behind] == sorted([ahead, *behind])
    assert len(set(behind)) == len(behind)
    # the stepped-back ids keep the latest millisecond seen (or the next ones)
    assert event_id_time(behind[0]) >= start.replace(microsecond=start.microsecond // 1000 * 1000)


def test_emitted_ids_agree_with_their_event_timestamps() -> None:
    from eventtracking.testing import InMemoryBackend
    from eventtracking.tracker import Tracker

    mem = InMemoryBackend()
    t = Tracker({"mem": mem}, envelope="full")
    for i in range(2_000):
        t.emit("tick", {"n": i})
    for event in mem.events:
        stamp = event["timestamp"]
        # the id's millisecond is the timestamp's, unless a burst borrowed a later one
        assert event_id_time(event["id"]) >= stamp.replace(
            microsecond=stamp.microsecond // 1000 * 1000
        )
        assert event_id_time(event["id"]) - stamp < timedelta(milliseconds=50)


@pytest.mark.usefixtures("fresh_ids")
def test_the_random_bits_are_read_from_the_os_once_per_128_milliseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # os.urandom releases the interpreter lock: one call per millisecond
    # handed it to the delivery worker once per millisecond.
    reads: list[int] = []
    real = os.urandom

    def urandom(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(event_module.os, "urandom", urandom)
    monkeypatch.setattr(event_module, "_pool", b"")
    start = datetime.now(UTC) + timedelta(days=2)
    ids = [new_event_id(start + timedelta(milliseconds=ms)) for ms in range(300)]
    assert reads == [1024, 1024, 1024]  # 128 milliseconds' worth each
    tails = {i[19:] for i in ids}
    assert len(tails) == 300  # each millisecond its own random bits
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
