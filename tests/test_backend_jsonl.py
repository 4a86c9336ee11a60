"""Tests for JSONLinesBackend: line format, batching, rotation, flushing and lifecycle."""

from __future__ import annotations

import json
import os
import threading
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventtracking import _process, diagnostics, tracker_from_config
from eventtracking.backends import jsonl
from eventtracking.backends.jsonl import JSONLinesBackend
from eventtracking.delivery import DeliveryBackend
from eventtracking.testing import FakeClock
from eventtracking.tracker import Tracker


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    diagnostics.reset()
    yield
    diagnostics.reset()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


@pytest.fixture
def backends() -> Iterator[list[JSONLinesBackend]]:
    """Backends to close after the test, so no file handle outlives it."""
    created: list[JSONLinesBackend] = []
    yield created
    for backend in created:
        backend.close()


def open_backend(created: list[JSONLinesBackend], path: Path, **options: Any) -> JSONLinesBackend:
    backend = JSONLinesBackend(path, **options)
    created.append(backend)
    return backend


def make_event(seq: int, name: str = "edx.test", **data: Any) -> dict[str, Any]:
    return {
        "id": f"id-{seq}",
        "name": name,
        "timestamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "data": {"seq": seq, **data},
        "context": {"user_id": 10938},
    }


def read_lines(file: Path) -> list[dict[str, Any]]:
    text = file.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n"), f"{file} ends with a partial line"
    return [json.loads(line) for line in text.splitlines()]


def rotated_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}."))


def all_seqs_in_file_order(path: Path) -> list[list[int]]:
    """The sequence numbers of each file (rotated ones and the current one)."""
    files = [*rotated_files(path), path]
    return [[e["data"]["seq"] for e in read_lines(f)] for f in files if f.exists()]


def assert_contiguous_chunks(chunks: list[list[int]], total: int) -> None:
    """Every event is in exactly one file, and each file holds a contiguous run."""
    non_empty = sorted((c for c in chunks if c), key=lambda c: c[0])
    flat = [seq for chunk in non_empty for seq in chunk]
    assert flat == list(range(total))


# -- format -----------------------------------------------------------------------


class TestFormat:
    def test_one_parseable_json_object_per_line(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path)
        backend.send(make_event(0, text="line\nbreak"))
        backend.send(make_event(1, text="unicode é 😀 \u2028"))
        backend.send(make_event(2, naive=datetime(2020, 1, 1, 12, 0)))
        backend.flush()
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b""
        assert len(lines) == 4
        events = [json.loads(line) for line in lines[:-1]]
        assert [e["data"]["seq"] for e in events] == [0, 1, 2]
        assert events[0]["data"]["text"] == "line\nbreak"
        assert events[1]["data"]["text"] == "unicode é 😀 \u2028"
        assert events[2]["data"]["naive"] == "2020-01-01T12:00:00+00:00"
        assert events[0]["timestamp"] == "2024-01-02T03:04:05+00:00"
        assert events[0]["context"] == {"user_id": 10938}

    def test_appends_to_an_existing_file(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        path.write_text(json.dumps({"data": {"seq": 0}}) + "\n", encoding="utf-8")
        backend = open_backend(backends, path)
        backend.send(make_event(1))
        backend.close()
        assert [e["data"]["seq"] for e in read_lines(path)] == [0, 1]

    def test_creates_parent_directories(
        self, tmp_path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        target = tmp_path / "a" / "b" / "events.jsonl"
        backend = open_backend(backends, target)
        backend.send(make_event(0))
        backend.close()
        assert read_lines(target)[0]["id"] == "id-0"

    def test_accepts_a_str_path(self, path: Path, backends: list[JSONLinesBackend]) -> None:
        backend = open_backend(backends, str(path))  # type: ignore[arg-type]
        backend.send(make_event(0))
        backend.close()
        assert len(read_lines(path)) == 1

    def test_send_batch_writes_every_event_in_order(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path)
        backend.send(make_event(0))
        backend.send_batch([make_event(i) for i in range(1, 6)])
        backend.send_batch([])
        backend.send(make_event(6))
        backend.close()
        assert [e["data"]["seq"] for e in read_lines(path)] == list(range(7))

    def test_does_not_modify_events(self, path: Path, backends: list[JSONLinesBackend]) -> None:
        event = make_event(0, nested={"a": [1, 2]})
        before = repr(event)
        open_backend(backends, path).send(event)
        assert repr(event) == before

    def test_inside_a_tracker_and_closed_with_it(self, path: Path) -> None:
        backend = JSONLinesBackend(path)
        tracker = Tracker({"file": backend})
        with tracker.context("outer", {"user_id": 7}):
            tracker.emit("navigation.request", {"url": "http://x"})
        tracker.close()
        (event,) = read_lines(path)
        assert event["name"] == "navigation.request"
        assert event["context"] == {"user_id": 7}
        with pytest.raises(RuntimeError):
            backend.send(make_event(1))


# -- size rotation ------------------------------------------------------------------


class TestSizeRotation:
    def test_rotates_without_losing_or_splitting_lines(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        rotate_bytes = 1_000
        backend = open_backend(backends, path, rotate_bytes=rotate_bytes)
        line_size = len(jsonl.dumps_line(make_event(100)))
        for i in range(200):
            backend.send(make_event(i))
        backend.close()

        rotated = rotated_files(path)
        assert len(rotated) >= 200 * line_size // (rotate_bytes + line_size)
        for file in rotated:
            size = file.stat().st_size
            # A file is rotated once it has reached the limit, before the next line.
            assert rotate_bytes <= size < rotate_bytes + line_size + 2
            assert file.name[len(path.name) + 1 :][:8].isdigit()
        assert_contiguous_chunks(all_seqs_in_file_order(path), 200)

    def test_batches_are_never_split_across_files(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path, rotate_bytes=500)
        for start in range(0, 100, 10):
            backend.send_batch([make_event(i) for i in range(start, start + 10)])
        backend.close()
        chunks = [c for c in all_seqs_in_file_order(path) if c]
        assert len(chunks) == 10
        for chunk in chunks:
            assert len(chunk) == 10
            assert chunk[0] % 10 == 0
        assert_contiguous_chunks(chunks, 100)

    def test_existing_content_counts_towards_the_limit(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        path.write_text(json.dumps({"data": {"seq": -1}}) + "\n" + " " * 600 + "\n")
        backend = open_backend(backends, path, rotate_bytes=500)
        backend.send(make_event(0))
        backend.close()
        (rotated,) = rotated_files(path)
        assert json.loads(rotated.read_text().splitlines()[0])["data"]["seq"] == -1
        assert [e["data"]["seq"] for e in read_lines(path)] == [0]

    def test_rotated_files_are_never_overwritten(
        self, path: Path, backends: list[JSONLinesBackend], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        frozen = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

        class FrozenDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
                return frozen  # type: ignore[return-value]

        monkeypatch.setattr(jsonl, "datetime", FrozenDatetime)
        stamp = "20240102T030405.678901"
        # A file left by an earlier run with the same stamp must survive too.
        (path.parent / f"{path.name}.{stamp}").write_text('{"data":{"seq":-1}}\n')

        backend = open_backend(backends, path, rotate_bytes=1)
        for i in range(5):
            backend.send(make_event(i))
        backend.close()

        names = sorted(p.name for p in rotated_files(path))
        assert names == sorted(
            [f"{path.name}.{stamp}"] + [f"{path.name}.{stamp}.{n}" for n in range(1, 5)]
        )
        assert read_lines(path.parent / f"{path.name}.{stamp}") == [{"data": {"seq": -1}}]
        found = sorted(
            e["data"]["seq"] for f in [*rotated_files(path), path] for e in read_lines(f)
        )
        assert found == [-1, 0, 1, 2, 3, 4]

    def test_failed_rename_keeps_writing_to_the_current_file(
        self,
        path: Path,
        backends: list[JSONLinesBackend],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def refuse(src: Any, dst: Any) -> None:
            raise PermissionError("read-only directory")

        backend = open_backend(backends, path, rotate_bytes=100)
        monkeypatch.setattr(jsonl.os, "replace", refuse)
        for i in range(5):
            backend.send(make_event(i))
        monkeypatch.undo()
        backend.flush()
        assert rotated_files(path) == []
        assert [e["data"]["seq"] for e in read_lines(path)] == list(range(5))
        assert diagnostics.snapshot()["jsonl.rotate_errors"] == 4
        assert "cannot rotate" in caplog.text
        # Once the rename works again, rotation resumes and nothing is lost.
        backend.send(make_event(5))
        backend.close()
        assert len(rotated_files(path)) == 1
        assert_contiguous_chunks(all_seqs_in_file_order(path), 6)

    def test_concurrent_senders_lose_nothing(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path, rotate_bytes=4_000)
        threads_n, per_thread = 8, 150

        def worker(t: int) -> None:
            for i in range(per_thread):
                seq = t * per_thread + i
                if i % 3 == 0:
                    backend.send_batch([make_event(seq)])
                else:
                    backend.send(make_event(seq))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        backend.close()
        seqs = [s for chunk in all_seqs_in_file_order(path) for s in chunk]
        assert sorted(seqs) == list(range(threads_n * per_thread))
        assert len(rotated_files(path)) > 1


# -- time rotation ------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Replace the jsonl module's view of `time` only; other code keeps the real clock."""
    fake = FakeClock()
    monkeypatch.setattr(jsonl, "time", types.SimpleNamespace(monotonic=fake))
    return fake


class TestTimeRotation:
    def test_rotates_after_the_interval(
        self, path: Path, backends: list[JSONLinesBackend], clock: FakeClock
    ) -> None:
        backend = open_backend(backends, path, rotate_interval=60)
        backend.send(make_event(0))
        clock.advance(59.9)
        backend.send(make_event(1))
        assert rotated_files(path) == []
        clock.advance(0.1)
        backend.send(make_event(2))
        backend.close()
        (rotated,) = rotated_files(path)
        assert [e["data"]["seq"] for e in read_lines(rotated)] == [0, 1]
        assert [e["data"]["seq"] for e in read_lines(path)] == [2]

    def test_interval_restarts_with_the_new_file(
        self, path: Path, backends: list[JSONLinesBackend], clock: FakeClock
    ) -> None:
        backend = open_backend(backends, path, rotate_interval=10)
        for i in range(6):
            backend.send(make_event(i))
            clock.advance(5)  # every second send comes 10 s after its file was opened
        backend.close()
        chunks = sorted(all_seqs_in_file_order(path), key=lambda c: c[0])
        assert chunks == [[0, 1], [2, 3], [4, 5]]
        assert [e["data"]["seq"] for e in read_lines(path)] == [4, 5]

    def test_empty_file_is_not_rotated(
        self, path: Path, backends: list[JSONLinesBackend], clock: FakeClock
    ) -> None:
        backend = open_backend(backends, path, rotate_interval=1)
        clock.advance(100)
        backend.send(make_event(0))
        backend.close()
        assert rotated_files(path) == []
        assert len(read_lines(path)) == 1

    def test_with_real_clock(self, path: Path, backends: list[JSONLinesBackend]) -> None:
        import time

        backend = open_backend(backends, path, rotate_interval=0.01)
        backend.send(make_event(0))
        time.sleep(0.05)
        backend.send(make_event(1))
        backend.close()
        assert len(rotated_files(path)) == 1
        assert_contiguous_chunks(all_seqs_in_file_order(path), 2)


# -- flushing and durability --------------------------------------------------------


class TestFlush:
    def test_flush_makes_content_visible_to_another_reader(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path)
        backend.send(make_event(0))
        backend.send_batch([make_event(1)])
        with open(path, "rb") as reader:
            assert reader.read() == b""  # still in the 1 MiB write buffer
            assert backend.flush() is True
            lines = reader.read().splitlines()
        assert [json.loads(line)["data"]["seq"] for line in lines] == [0, 1]

    def test_autoflush_makes_each_send_visible(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path, autoflush=True)
        with open(path, "rb") as reader:
            backend.send(make_event(0))
            assert json.loads(reader.readline())["data"]["seq"] == 0
            backend.send_batch([make_event(1), make_event(2)])
            assert [json.loads(line)["data"]["seq"] for line in reader.readlines()] == [1, 2]

    def test_unbuffered(self, path: Path, backends: list[JSONLinesBackend]) -> None:
        backend = open_backend(backends, path, buffer_size=0)
        backend.send(make_event(0))
        assert read_lines(path)[0]["data"]["seq"] == 0

    def test_fsync_is_called_on_flush(
        self, path: Path, backends: list[JSONLinesBackend], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_fsync = os.fsync
        synced: list[int] = []

        def spy(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        backend = open_backend(backends, path, fsync=True)
        monkeypatch.setattr(jsonl.os, "fsync", spy)
        backend.send(make_event(0))
        assert synced == []
        assert backend.flush() is True
        assert len(synced) == 1
        assert read_lines(path)[0]["data"]["seq"] == 0

    def test_fsync_with_autoflush_and_rotation(
        self, path: Path, backends: list[JSONLinesBackend], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        synced: list[int] = []
        real_fsync = os.fsync
        monkeypatch.setattr(jsonl.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
        backend = open_backend(backends, path, fsync=True, autoflush=True, rotate_bytes=200)
        for i in range(5):
            backend.send(make_event(i))
        backend.close()
        assert len(synced) >= 5
        assert_contiguous_chunks(all_seqs_in_file_order(path), 5)

    def test_no_fsync_by_default(
        self, path: Path, backends: list[JSONLinesBackend], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        synced: list[int] = []
        monkeypatch.setattr(jsonl.os, "fsync", synced.append)
        backend = open_backend(backends, path, autoflush=True)
        backend.send(make_event(0))
        backend.flush()
        backend.close()
        assert synced == []

    def test_flush_returns_false_when_the_file_is_busy(
        self, path: Path, backends: list[JSONLinesBackend]
    ) -> None:
        backend = open_backend(backends, path)
        backend.send(make_event(0))
        with backend._lock:  # another writer holds the file
            assert backend.flush(0.0) is False
            assert backend.flush(-1.0) is False
        assert backend.flush(0.0) is True

    def test_in_caller_delivery_flushes_the_file_at_exit(self, path: Path) -> None:
        writer = JSONLinesBackend(path)
        delivery = DeliveryBackend(writer, mode="inline", batch_size=1)
        delivery.send(make_event(0))  # written into the file's buffer
        assert read_lines(path) == []
        _process._at_exit()  # what the interpreter runs at exit
        assert read_lines(path)[0]["data"]["seq"] == 0
        assert delivery.closed and writer._closed


# -- lifecycle and validation -------------------------------------------------------


class TestLifecycle:
    def test_close_flushes_and_is_idempotent(self, path: Path) -> None:
        backend = JSONLinesBackend(path)
        backend.send(make_event(0))
        backend.close()
        backend.close()
        assert len(read_lines(path)) == 1

    def test_send_after_close_raises(self, path: Path) -> None:
        backend = JSONLinesBackend(path)
        backend.close()
        with pytest.raises(RuntimeError, match="closed"):
            backend.send(make_event(0))
        with pytest.raises(RuntimeError, match="closed"):
            backend.send_batch([make_event(1)])
        assert read_lines(path) == []

    def test_flush_after_close_is_harmless(self, path: Path) -> None:
        backend = JSONLinesBackend(path)
        backend.close()
        assert backend.flush() is True

    @pytest.mark.parametrize(
        ("options", "name"),
        [
            ({"rotate_bytes": 0}, "rotate_bytes"),
            ({"rotate_bytes": -5}, "rotate_bytes"),
            ({"rotate_bytes": "1MB"}, "rotate_bytes"),
            ({"rotate_bytes": 1.5}, "rotate_bytes"),
            ({"rotate_bytes": True}, "rotate_bytes"),
            ({"rotate_interval": 0}, "rotate_interval"),
            ({"rotate_interval": -1.0}, "rotate_interval"),
            ({"rotate_interval": "1h"}, "rotate_interval"),
            ({"rotate_interval": float("nan")}, "rotate_interval"),
            ({"rotate_interval": True}, "rotate_interval"),
            ({"buffer_size": -1}, "buffer_size"),
            ({"buffer_size": 1.0}, "buffer_size"),
            ({"buffer_size": False}, "buffer_size"),
        ],
    )
    def test_bad_options(self, path: Path, options: dict[str, Any], name: str) -> None:
        with pytest.raises(ValueError, match=name):
            JSONLinesBackend(path, **options)
        assert not path.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_in_caller_delivery_never_lets_a_child_duplicate_buffered_lines(tmp_path: Path) -> None:
    path = tmp_path / "fork.jsonl"
    backend = DeliveryBackend(JSONLinesBackend(path), mode="inline", batch_size=1)
    backend.send({"name": "before-fork"})  # in the file's buffer when the process forks
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            backend.send({"name": "child"})
            backend.close(10)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    backend.send({"name": "parent"})
    backend.close(10)
    names = sorted(json.loads(line)["name"] for line in path.read_text().splitlines())
    assert names == ["before-fork", "child", "parent"]


def test_configuration_delivers_in_the_caller_unless_autoflush(tmp_path: Path) -> None:
    def built(**options: Any) -> Any:
        spec = {"ENGINE": "eventtracking.backends.jsonl.JSONLinesBackend", "OPTIONS": options}
        return tracker_from_config({"backends": {"f": spec}}).get_backend("f")

    buffered = built(path=str(tmp_path / "a.jsonl"))
    assert isinstance(buffered, DeliveryBackend) and buffered.options.mode == "inline"
    buffered.close()
    direct = built(path=str(tmp_path / "b.jsonl"), autoflush=True)  # nothing is ever held
    assert isinstance(direct, JSONLinesBackend)
    direct.close()
