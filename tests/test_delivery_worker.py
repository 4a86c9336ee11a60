"""The delivery worker in buffered mode: batching, faults, overflow policies, lifecycle, config.

No assertion here depends on how long something took: waits poll a
condition with a generous safety net (`wait_for`), and "emit does not block"
is shown by emit returning while the backend is provably stuck.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delivery_support import GatedBackend, SlowBackend, event, wait_for
from eventtracking import Tracker, diagnostics, load_tracker, tracker_from_config
from eventtracking.backends.routing import RoutingBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.exceptions import ImproperlyConfigured
from eventtracking.serialization import dumps
from eventtracking.testing import (
    BlockingBackend,
    DownBackend,
    FlakyBackend,
    InMemoryBackend,
    RecordingBackend,
    RejectingBackend,
)

Make = Callable[..., DeliveryBackend]


@pytest.fixture
def make() -> Iterator[Make]:
    """Build delivery backends that are closed after the test, whatever happens."""
    made: list[DeliveryBackend] = []

    def build(backend: Any, **options: Any) -> DeliveryBackend:
        delivery = DeliveryBackend(backend, **options)
        made.append(delivery)
        return delivery

    yield build
    for delivery in made:
        if isinstance(delivery.backend, BlockingBackend):
            delivery.backend.release()
        delivery.close()


# -- batching ------------------------------------------------------------------------------


def test_take_removes_events_from_the_head_in_order(make: Make) -> None:
    # The worker waits for a full batch (or a minute): the test alone takes from its queue.
    delivery = make(InMemoryBackend(), journal_dir=False, batch_size=100, max_delay=60)
    worker = delivery._worker
    assert worker is not None
    with worker.lock:
        worker.queue.extend({"n": i} for i in range(5))
    assert worker.take(2) == [{"n": 0}, {"n": 1}]  # part of the queue
    assert worker.take(3) == [{"n": 2}, {"n": 3}, {"n": 4}]  # exactly all of it
    assert worker.take(10) == [] and not worker.queue
    with worker.lock:
        worker.queue.extend({"n": i} for i in range(5, 7))
    assert worker.take(10) == [{"n": 5}, {"n": 6}] and not worker.queue  # less than asked


def test_events_appended_while_the_queue_is_taken_are_never_lost(make: Make) -> None:
    # Emitting threads append without the worker's lock, and the interpreter
    # may switch to one before any call: play an emitter appending at each
    # call that take makes (a profile hook runs before every call of C code).
    delivery = make(InMemoryBackend(), journal_dir=False, batch_size=100, max_delay=60)
    worker = delivery._worker
    assert worker is not None
    appended = 0

    def emitter_runs_now(frame: Any, what: str, arg: Any) -> None:
        nonlocal appended
        if what == "c_call" and appended < 100:
            worker.queue.append({"n": appended})
            appended += 1

    taken: list[Any] = []
    for limit in (2, 1000, 3, 1000):  # part of the queue, then all of it
        sys.setprofile(emitter_runs_now)
        try:
            taken += worker.take(limit)
        finally:
            sys.setprofile(None)
    assert appended > len(taken) > 0
    rest = worker.take(1000)
    assert [e["n"] for e in taken + rest] == list(range(appended))  # each once, in order
    assert worker.taken == appended


def test_emitted_counts_every_send_in_each_mode(make: Make, tmp_path: Path) -> None:
    for mode in ("buffered", "inline", "sync", "durable"):
        journal = None if mode == "sync" else tmp_path / mode
        delivery = make(InMemoryBackend(), mode=mode, journal_dir=journal, batch_size=3)
        for i in range(7):
            delivery.send(event(i))
        delivery.send_batch([event(7), event(8)])
        assert delivery.metrics_snapshot()["emitted"] == 9, mode


def test_batches_by_count(make: Make) -> None:
    backend = RecordingBackend()
    delivery = make(backend, batch_size=10, max_delay=3600)
    for n in range(35):
        delivery.send(event(n))
    assert wait_for(lambda: len(backend.events) >= 30)
    assert [len(b) for b in backend.batches] == [10, 10, 10]  # the rest waits for more
    assert delivery.flush(10)
    assert [len(b) for b in backend.batches] == [10, 10, 10, 5]
    assert backend.ids() == [f"ev-{n:08d}" for n in range(35)]


def test_batches_by_bytes(make: Make) -> None:
    backend = RecordingBackend()
    limit = 3 * len(dumps(event(1))) + 10
    delivery = make(backend, batch_size=1000, batch_bytes=limit, max_delay=3600)
    for n in range(20):
        delivery.send(event(n))
    assert delivery.flush(10)
    assert len(backend.events) == 20 and len(backend.batches) >= 7
    assert all(sum(len(dumps(e)) for e in batch) <= limit for batch in backend.batches)


def test_batches_by_time(make: Make) -> None:
    backend = RecordingBackend()
    delivery = make(backend, batch_size=1000, max_delay=0.05)
    for n in range(3):
        delivery.send(event(n))
    # Nothing but max_delay can send a batch of 3 when a batch holds 1000.
    assert wait_for(lambda: len(backend.events) == 3)
    assert [len(b) for b in backend.batches] == [3]


def test_inline_events_emitted_while_max_delay_runs_go_out_with_it(make: Make) -> None:
    # The first event starts the worker's clock; a full batch is then written
    # by the caller, and the next event does not wake the worker again: it
    # goes out when the running clock expires, without a flush.
    backend = RecordingBackend()
    delivery = make(backend, mode="inline", batch_size=10, max_delay=2.0)
    worker = delivery._worker
    assert worker is not None
    delivery.send(event(0))
    assert wait_for(lambda: worker.timing)
    for n in range(1, 11):
        delivery.send(event(n))
    assert len(backend.events) == 10  # written by this thread; event 10 waits
    assert wait_for(lambda: len(backend.events) == 11)
    assert backend.ids()[-1] == f"ev-{10:08d}"


# -- faults -----------------------------------------------------------------------------------


def test_emit_never_blocks_on_a_hanging_backend(make: Make) -> None:
    backend = BlockingBackend()
    delivery = make(backend, batch_size=1, queue_size=1000)
    delivery.send(event(0))
    assert backend.wait_until_blocked()
    for n in range(1, 200):  # the worker is stuck inside the backend meanwhile
        delivery.send(event(n))
    assert delivery.flush(0.05) is False
    backend.release()
    assert delivery.flush(10) is True
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(200)]


def test_one_failing_backend_never_slows_the_others(make: Make) -> None:
    stuck, healthy = BlockingBackend(), RecordingBackend()
    tracker = Tracker({"stuck": make(stuck, name="stuck"), "ok": make(healthy, name="ok")})
    for n in range(50):
        tracker.emit("a.b", {"n": n})
    assert tracker.get_backend("ok").flush(10) is True
    assert len(healthy.events) == 50
    assert tracker.flush(0.05) is False  # the stuck one cannot finish
    stuck.release()
    assert tracker.flush(10) is True
    tracker.close()
    assert len(stuck.events) == 50


def test_slow_backend_gets_everything(make: Make) -> None:
    backend = SlowBackend(0.002)
    delivery = make(backend, batch_size=20, max_delay=0.01)
    for n in range(300):
        delivery.send(event(n))
    assert delivery.flush(30)
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(300)]


def test_fails_n_times_then_succeeds(make: Make) -> None:
    backend = FlakyBackend(failures=3)
    delivery = make(backend, max_delay=0.01, retry={"initial_backoff": 0.001})
    for n in range(10):
        delivery.send(event(n))
    assert delivery.flush(10)
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(10)]
    stats = delivery.metrics_snapshot()
    assert stats["failures"] == 3 and stats["delivered"] == 10 and stats["retried"] >= 3


def test_rejected_events_go_to_dead_letters_in_the_journal_dir(make: Make, tmp_path: Path) -> None:
    backend = RejectingBackend(lambda e: e["data"]["n"] in (4, 9))
    delivery = make(backend, journal_dir=tmp_path / "j", max_delay=0.01)
    for n in range(12):
        delivery.send(event(n))
    assert delivery.flush(10)
    assert len(backend.events) == 10
    assert delivery.dead_letters is not None
    assert delivery.dead_letters.path == tmp_path / "j" / "dead-letters.db"
    letters = delivery.dead_letters.select()
    assert sorted(letter.event["data"]["n"] for letter in letters) == [4, 9]
    assert {letter.backend for letter in letters} == {"RejectingBackend"}


# -- overflow policies ---------------------------------------------------------------------------


def stuck_and_full(make: Make, **options: Any) -> tuple[DeliveryBackend, BlockingBackend]:
    """A delivery backend whose worker is stuck on event 0 and whose queue (5) is full."""
    backend = BlockingBackend()
    delivery = make(backend, name="d", batch_size=1, queue_size=5, **options)
    delivery.send(event(0))
    assert backend.wait_until_blocked()
    for n in range(1, 6):
        delivery.send(event(n))
    return delivery, backend


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest", "block", "spill"])
def test_emitted_counts_each_overflowing_event_once(
    make: Make, tmp_path: Path, overflow: str
) -> None:
    # Queued events are counted by the queue, the others by emit: never both.
    delivery, backend = stuck_and_full(
        make, overflow=overflow, block_timeout=0.01, journal_dir=tmp_path / "j"
    )
    delivery.send(event(6))
    delivery.send(event(7))
    assert delivery.metrics_snapshot()["emitted"] == 8
    backend.release()
    assert delivery.flush(10)
    stats = delivery.metrics_snapshot()
    assert stats["emitted"] == 8 == stats["delivered"] + stats["dropped_total"]


def test_emitted_is_unchanged_by_events_given_back_to_the_queue(make: Make) -> None:
    # A batch that fails in the caller (inline) and a batch cut to its bytes
    # both put events back at the head of the queue: they were emitted once.
    inline = make(
        FlakyBackend(1), mode="inline", batch_size=4, max_delay=0.01, retry={"initial_backoff": 0}
    )
    cut = make(InMemoryBackend(), batch_size=10, batch_bytes=300, max_delay=0.01)
    for n in range(10):
        inline.send(event(n))
        cut.send(event(n))
    for delivery in (inline, cut):
        assert delivery.flush(10)
        stats = delivery.metrics_snapshot()
        assert stats["emitted"] == 10 == stats["delivered"], stats
    assert cut.metrics_snapshot()["batches"] >= 5  # the byte limit did cut batches


def test_drop_newest_counts_each_drop(make: Make) -> None:
    delivery, backend = stuck_and_full(make, overflow="drop_newest")
    delivery.send(event(6))
    delivery.send(event(7))
    backend.release()
    assert delivery.flush(10)
    assert backend.ids() == [f"ev-{n:08d}" for n in range(6)]
    assert delivery.metrics_snapshot()["dropped"] == {"queue_full": 2}
    assert diagnostics.snapshot()["delivery.d.dropped.queue_full"] == 2


def test_drop_oldest_evicts_and_counts(make: Make) -> None:
    delivery, backend = stuck_and_full(make, overflow="drop_oldest")
    delivery.send(event(6))
    delivery.send(event(7))
    backend.release()
    assert delivery.flush(10)
    assert backend.ids() == [f"ev-{n:08d}" for n in (0, 3, 4, 5, 6, 7)]
    assert delivery.metrics_snapshot()["dropped"] == {"oldest": 2}


def test_block_drops_after_its_timeout(make: Make) -> None:
    delivery, backend = stuck_and_full(make, overflow="block", block_timeout=0.01)
    delivery.send(event(6))
    assert delivery.metrics_snapshot()["dropped"] == {"block_timeout": 1}
    backend.release()
    assert delivery.flush(10)


def test_block_waits_for_room(make: Make) -> None:
    delivery, backend = stuck_and_full(make, overflow="block", block_timeout=60)
    sender = threading.Thread(target=delivery.send, args=(event(6),))
    sender.start()
    assert wait_for(lambda: delivery._worker is not None and delivery._worker.waiting_for_room == 1)
    backend.release()
    sender.join(30)
    assert delivery.flush(10)
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(7)]
    assert delivery.metrics_snapshot()["dropped"] == {}


def test_spill_journals_what_does_not_fit(make: Make, tmp_path: Path) -> None:
    delivery, backend = stuck_and_full(make, overflow="spill", journal_dir=tmp_path / "j")
    delivery.send(event(6))
    delivery.send(event(7))
    assert delivery.metrics_snapshot()["journaled"] == 2
    backend.release()
    assert delivery.flush(10)
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(8)]
    assert delivery.metrics_snapshot()["dropped"] == {}


def test_spill_with_the_disk_budget_spent_drops_and_counts(make: Make, tmp_path: Path) -> None:
    delivery, backend = stuck_and_full(
        make, overflow="spill", journal_dir=tmp_path / "j", segment_bytes=100, disk_budget=100
    )
    delivery.send(event(6))
    assert delivery.metrics_snapshot()["dropped"] == {"disk_full": 1}
    backend.release()
    assert delivery.flush(10)


def test_open_circuit_moves_the_queue_to_the_journal(make: Make, tmp_path: Path) -> None:
    gate = tmp_path / "up"
    backend = GatedBackend(RecordingBackend(), str(gate))
    delivery = make(
        backend,
        journal_dir=tmp_path / "j",
        batch_size=10,
        max_delay=0.01,
        circuit={"failure_threshold": 1, "reset_timeout": 0.05},
    )
    for n in range(200):
        delivery.send(event(n))
    assert wait_for(lambda: delivery.metrics_snapshot()["journaled"] >= 190)
    assert wait_for(lambda: delivery.metrics_snapshot()["queue_depth"] == 0)
    gate.touch()
    assert delivery.flush(20)
    assert sorted(backend.inner.ids()) == [f"ev-{n:08d}" for n in range(200)]


def test_the_worker_gives_id_less_events_one_id_that_retries_and_the_journal_keep(
    make: Make, tmp_path: Path
) -> None:
    def bare(n: int) -> dict[str, Any]:
        return {k: v for k, v in event(n).items() if k != "id"}

    backend = FlakyBackend(1)  # the first attempt fails: the retry must carry the same ids
    delivery = make(backend, batch_size=5, max_delay=0.01, retry={"initial_backoff": 0.01})
    sent = [bare(n) for n in range(5)]
    for one in sent:
        delivery.send(one)
    assert delivery.flush(10)
    assert all("id" not in one for one in sent)  # the caller's dicts are left alone
    ids = backend.ids()
    assert [e["data"]["n"] for e in backend.events] == list(range(5))
    assert len(set(ids)) == 5 and ids == sorted(ids)  # time-ordered, in queue order
    assert backend.attempts == 2

    down = DeliveryBackend(DownBackend(), journal_dir=tmp_path / "j", max_delay=0.01)
    for n in range(5):
        down.send(bare(n))
    down.close()  # queued, never delivered: journaled with the ids the worker gave
    after_backend = RecordingBackend()
    after = DeliveryBackend(after_backend, journal_dir=tmp_path / "j", max_delay=0.01)
    assert after.flush(10)
    after.close()
    again = after_backend.ids()
    assert sorted(e["data"]["n"] for e in after_backend.events) == list(range(5))
    assert len(set(again)) == 5 and all(isinstance(i, str) and i for i in again)


# -- lifecycle ------------------------------------------------------------------------------------


def test_close_keeps_undelivered_events_in_the_journal_for_the_next_process(
    tmp_path: Path,
) -> None:
    down = DeliveryBackend(DownBackend(), journal_dir=tmp_path / "j", max_delay=0.01)
    for n in range(20):
        down.send(event(n))
    down.close()
    assert down.metrics_snapshot()["dropped"] == {}
    backend = RecordingBackend()
    after = DeliveryBackend(backend, journal_dir=tmp_path / "j", max_delay=0.01)
    assert after.flush(10)
    after.close()
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(20)]
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["dead-letters.db"]


def test_close_while_the_worker_spills_keeps_the_chunk_in_its_hands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The worker's journal write is held past close's grace period: close must
    # wait for that chunk instead of taking the queue around it and losing it.
    delivery = DeliveryBackend(
        DownBackend(),
        journal_dir=tmp_path / "j",
        batch_size=10,
        max_delay=0.01,
        circuit={"failure_threshold": 1, "reset_timeout": 3600},
    )
    journal = delivery.journal
    assert journal is not None
    write, in_write = journal.append, threading.Event()

    def slow_from_the_worker(data: bytes, records: int = 1, obj: Any = None) -> None:
        if threading.current_thread().name.startswith("eventtracking-delivery"):
            in_write.set()
            threading.Event().wait(0.6)  # longer than STOP_GRACE
        write(data, records, obj)

    journal.append = slow_from_the_worker  # type: ignore[method-assign]
    for n in range(3_000):
        delivery.send(event(n))
    assert in_write.wait(10)
    delivery.close()
    stats = delivery.metrics_snapshot()
    assert stats["dropped"] == {}
    assert stats["journaled"] + stats["delivered"] == 3_000 == stats["emitted"]
    backend = RecordingBackend()
    after = DeliveryBackend(backend, journal_dir=tmp_path / "j", max_delay=0.01)
    assert after.flush(20)
    after.close()
    assert sorted(backend.ids()) == [f"ev-{n:08d}" for n in range(3_000)]
    assert "abandoned" not in caplog.text  # it was spilling, not stuck in the backend


def test_close_without_a_journal_counts_what_is_lost(make: Make) -> None:
    delivery, backend = stuck_and_full(make, journal_dir=None)
    delivery.close()  # the worker is stuck: its batch (event 0) counts as lost too
    assert delivery.metrics_snapshot()["dropped"] == {"shutdown": 6}
    backend.release()


def test_send_after_close_raises_and_close_is_idempotent(make: Make) -> None:
    delivery = make(RecordingBackend())
    delivery.close()
    delivery.close()
    with pytest.raises(RuntimeError, match="closed"):
        delivery.send(event(1))
    assert delivery.flush(1)


def test_close_with_a_timeout_flushes_first(make: Make) -> None:
    backend = RecordingBackend()
    delivery = make(backend, max_delay=3600)
    delivery.send(event(1))
    delivery.close(10)
    assert backend.ids() == ["ev-00000001"] and backend.closed


def test_aflush_inside_asyncio() -> None:
    backend = RecordingBackend()
    tracker = Tracker({"d": DeliveryBackend(backend, max_delay=3600)})

    async def main() -> bool:
        tracker.emit("a.b", {"n": 1})
        flushed = await tracker.aflush(10)
        await tracker.aclose()
        return flushed

    assert asyncio.run(main()) is True
    assert len(backend.events) == 1 and tracker.closed


def test_one_journal_dir_per_delivery_backend(make: Make, tmp_path: Path) -> None:
    make(RecordingBackend(), journal_dir=tmp_path / "j")
    with pytest.raises(ValueError, match="already used by delivery backend"):
        DeliveryBackend(RecordingBackend(), journal_dir=tmp_path / "j")


# -- stats and metrics ------------------------------------------------------------------------


def test_tracker_stats_include_delivery_metrics_of_nested_backends(make: Make) -> None:
    inner = make(RecordingBackend(), name="inner", max_delay=0.01)
    tracker = Tracker({"tree": RoutingBackend({"x": inner}), "top": make(InMemoryBackend())})
    for n in range(5):
        tracker.emit("a.b", {"n": n})
    assert tracker.flush(10)
    stats = tracker.stats()
    assert stats["delivery.inner.emitted"] == 5
    assert stats["delivery.inner.delivered"] == 5
    assert stats["delivery.InMemoryBackend.delivered"] == 5
    assert stats["delivery.inner.queue_depth"] == 0
    assert "delivery.inner.latency_p99_us" in stats


def test_worker_writes_a_metrics_file_in_its_lane(make: Make, tmp_path: Path) -> None:
    delivery = make(RecordingBackend(), name="m", journal_dir=tmp_path / "j", metrics_interval=0.01)
    delivery.send(event(1))
    assert delivery.flush(10)
    path = tmp_path / "j" / f"metrics-{os.getpid()}.json"
    assert wait_for(path.exists)
    assert '"name": "m"' in path.read_text()
    delivery.close()
    assert not path.exists()


# -- configuration ----------------------------------------------------------------------------


def test_configured_as_a_component_tree(tmp_path: Path) -> None:
    tracker = tracker_from_config(
        {
            "backends": {
                "store": {
                    "ENGINE": "eventtracking.delivery.DeliveryBackend",
                    "OPTIONS": {
                        "backend": {"ENGINE": "eventtracking.testing.InMemoryBackend"},
                        "mode": "durable",
                        "journal_dir": str(tmp_path / "j"),
                        "fsync": "interval",
                        "retry": {"max_attempts": 3},
                        "circuit": {"reset_timeout": 5},
                    },
                }
            }
        }
    )
    delivery = tracker.get_backend("store")
    assert isinstance(delivery, DeliveryBackend)
    assert delivery.options.retry.max_attempts == 3 and delivery.options.fsync == "interval"
    tracker.emit("a.b", {})
    tracker.close()
    assert len(delivery.backend.events) == 1


def test_configured_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "tracking.toml"
    config.write_text(
        f"""
[backends.store]
ENGINE = "eventtracking.delivery.DeliveryBackend"
[backends.store.OPTIONS]
name = "store"
journal_dir = "{tmp_path / "j"}"
overflow = "spill"
[backends.store.OPTIONS.backend]
ENGINE = "eventtracking.backends.sqlite.SQLiteBackend"
OPTIONS = {{ path = "{tmp_path / "e.db"}" }}
"""
    )
    tracker = load_tracker(config)
    tracker.emit("a.b", {})
    tracker.close()
    assert tracker.stats()["delivery.store.delivered"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"mode": "fast"},
            "mode: expected one of 'buffered', 'durable', 'sync', 'inline', got str 'fast'",
        ),
        ({"mode": "durable", "journal_dir": False}, "mode='durable' needs a journal"),
        (
            {"overflow": "spill", "journal_dir": False},
            "overflow='spill' needs mode='buffered' or 'inline' and a journal",
        ),
        ({"batch_size": 0}, "batch_size must be a positive int, not 0"),
        ({"max_delay": -1}, "max_delay must be a number of seconds >= 0"),
        ({"retry": {"attempts": 3}}, "retry: unknown option(s) ['attempts']; valid options"),
        ({"fsync": "always"}, "fsync='always' applies to mode='durable' only"),
        ({"colour": "red"}, "unknown option(s) ['colour']"),
        ({"batch_size": "many"}, "batch_size: expected int | None, got str 'many'"),
    ],
)
def test_bad_options_are_improperly_configured(options: dict[str, Any], message: str) -> None:
    spec = {
        "ENGINE": "eventtracking.delivery.DeliveryBackend",
        "OPTIONS": {"backend": {"ENGINE": "eventtracking.testing.InMemoryBackend"}, **options},
    }
    with pytest.raises(ImproperlyConfigured) as info:
        tracker_from_config({"backends": {"d": spec}})
    assert message in str(info.value)
    assert str(info.value).startswith("backends.d")


def test_durable_mode_refuses_to_drop_journaled_events(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="accepts overflow 'block' or 'drop_newest'"):
        DeliveryBackend(
            RecordingBackend(), mode="durable", journal_dir=tmp_path, overflow="drop_oldest"
        )


def test_a_backend_without_send_is_refused() -> None:
    with pytest.raises(ValueError, match="no callable 'send'"):
        DeliveryBackend(object())


def test_the_delivery_package_exports_what_it_lists() -> None:
    import eventtracking.delivery as delivery

    assert all(hasattr(delivery, name) for name in delivery.__all__)
    assert "DeliveryBackend" in delivery.__all__
