"""Context isolation per thread and per asyncio task, the process scope, and nesting."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from eventtracking.locator import DefaultContextLocator, ThreadLocalContextLocator
from eventtracking.testing import InMemoryBackend
from eventtracking.tracker import Tracker


def test_threads_do_not_see_each_others_task_contexts() -> None:
    t = Tracker({"mem": InMemoryBackend()})
    t.enter_context("main", {"who": "main"})
    seen: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        t.enter_context("req", {"who": name})
        barrier.wait()  # both threads have entered before either reads
        seen[name] = t.resolve_context()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"t1": {"who": "t1"}, "t2": {"who": "t2"}}
    assert t.resolve_context() == {"who": "main"}


def test_asyncio_tasks_are_isolated_and_inherit_their_parents_contexts() -> None:
    t = Tracker({"mem": InMemoryBackend()})

    async def handler(n: int) -> dict[str, Any]:
        with t.context("request", {"request": n}):
            await asyncio.sleep(0.01)  # interleave with the other tasks
            with t.context("view", {"view": f"v{n}"}):
                await asyncio.sleep(0.01)
                return t.resolve_context()

    async def main() -> list[dict[str, Any]]:
        t.enter_context("app", {"app": "demo"})
        return list(await asyncio.gather(*(handler(n) for n in range(5))))

    results = asyncio.run(main())
    assert results == [{"app": "demo", "request": n, "view": f"v{n}"} for n in range(5)]


def test_process_scope_reaches_every_thread_and_task_and_task_scope_wins() -> None:
    t = Tracker({"mem": InMemoryBackend()})
    t.enter_context("service", {"service": "lms", "release": "1.0"}, scope="process")
    out: dict[str, Any] = {}

    def worker() -> None:
        t.enter_context("req", {"release": "override"})
        out["thread"] = t.resolve_context()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()

    async def task() -> dict[str, Any]:
        return t.resolve_context()

    out["task"] = asyncio.run(task())
    assert out["thread"] == {"service": "lms", "release": "override"}
    assert out["task"] == {"service": "lms", "release": "1.0"}
    t.exit_context("service", scope="process")
    assert t.resolve_context() == {}


def test_process_context_entered_later_is_seen_by_a_running_thread() -> None:
    t = Tracker({"mem": InMemoryBackend()})
    entered = threading.Event()
    checked: dict[str, Any] = {}

    def worker() -> None:
        before = t.resolve_context()
        entered.wait(5)
        checked["before"], checked["after"] = before, t.resolve_context()

    thread = threading.Thread(target=worker)
    thread.start()
    t.enter_context("host", {"host": "web-1"}, scope="process")
    entered.set()
    thread.join()
    assert checked["after"] == {"host": "web-1"}


def test_thread_local_locator_isolates_threads() -> None:
    locator = ThreadLocalContextLocator()
    locator.enter("a", {"x": 1})
    seen: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: seen.append(locator.resolve()))
    thread.start()
    thread.join()
    assert seen == [{}]
    assert locator.resolve() == {"x": 1}
    assert locator.names() == ["a"]


def test_merged_view_is_cached_until_contexts_change() -> None:
    locator = DefaultContextLocator()
    locator.enter("a", {"x": 1})
    first = locator.merged()
    assert locator.merged() is first
    locator.enter("p", {"y": 2}, scope="process")
    assert locator.merged() == {"x": 1, "y": 2}
    assert locator.merged() is not first


# -- a reference model for nesting --------------------------------------------------

names = st.sampled_from(["a", "b", "c", "d"])
contexts = st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.integers(), max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("enter"), names, contexts),
        st.tuples(st.just("exit"), names, st.just({})),
    ),
    max_size=30,
)


@given(operations)
def test_nesting_matches_an_ordered_dict_model(ops: list[tuple[str, str, dict[str, int]]]) -> None:
    t = Tracker({"mem": InMemoryBackend()})
    model: dict[str, dict[str, int]] = {}  # Open edX's OrderedDict: re-entry keeps the place
    for op, name, ctx in ops:
        if op == "enter":
            t.enter_context(name, ctx)
            model[name] = ctx
        elif name in model:
            t.exit_context(name)
            del model[name]
        else:
            try:
                t.exit_context(name)
            except KeyError:
                pass
            else:  # pragma: no cover - a failure message, not a path we expect
                raise AssertionError("exit of an unknown context must raise KeyError")
        expected: dict[str, int] = {}
        for value in model.values():
            expected.update(value)
        assert t.resolve_context() == expected
        assert list(t.located_context) == list(model)


@given(st.lists(st.tuples(names, contexts), max_size=8))
def test_with_blocks_restore_the_previous_state_exactly(
    blocks: list[tuple[str, dict[str, int]]],
) -> None:
    t = Tracker({"mem": InMemoryBackend()})
    t.enter_context("base", {"k1": -1})

    def nest(remaining: list[tuple[str, dict[str, int]]]) -> None:
        if not remaining:
            return
        before = t.resolve_context()
        name, ctx = remaining[0]
        fresh = name not in t.located_context
        with t.context(name, ctx):
            if fresh:
                assert t.resolve_context() == {**before, **ctx}
            nest(remaining[1:])
        assert t.resolve_context() == before

    nest(blocks)
    assert t.resolve_context() == {"k1": -1}
