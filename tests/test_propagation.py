"""The active span follows work into asyncio tasks, trio tasks and threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import trio

import tracekit
from tracekit.testing import Capture


@tracekit.track
def leaf(label: str) -> str:
    return label


@tracekit.track
async def async_leaf(label: str) -> str:
    await asyncio.sleep(0)
    return label


def _parents_by_label(capture: Capture) -> dict[str, str | None]:
    return {
        s.input["label"]: s.parent_id for s in capture.spans if s.name in {"leaf", "async_leaf"}
    }


def test_asyncio_create_task_inherits_the_creators_span(tracekit_capture: Capture) -> None:
    """A task created under a span runs its tracked work as that span's children."""

    async def main() -> None:
        with tracekit.span("creator"):
            task = asyncio.create_task(async_leaf("task"))
        await task

    asyncio.run(main())
    assert _parents_by_label(tracekit_capture)["task"] == tracekit_capture.named("creator").id


def test_asyncio_gather_children_share_the_parent(tracekit_capture: Capture) -> None:
    """Coroutines gathered under a span are all its children, not each other's."""

    @tracekit.track
    async def fan_out() -> list[str]:
        return await asyncio.gather(*(async_leaf(f"g{i}") for i in range(5)))

    assert asyncio.run(fan_out()) == [f"g{i}" for i in range(5)]
    fan = tracekit_capture.named("fan_out")
    assert set(_parents_by_label(tracekit_capture).values()) == {fan.id}


def test_asyncio_taskgroup_children_share_the_parent(tracekit_capture: Capture) -> None:
    """Tasks started in a TaskGroup under a span are that span's children."""

    @tracekit.track
    async def group() -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                tg.create_task(async_leaf(f"t{i}"))

    asyncio.run(group())
    parent = tracekit_capture.named("group")
    assert set(_parents_by_label(tracekit_capture).values()) == {parent.id}


def test_trio_start_soon_children_inherit_the_spawners_span(tracekit_capture: Capture) -> None:
    """Tasks started with nursery.start_soon under a span are its children."""

    @tracekit.track
    async def trio_leaf(label: str) -> None:
        await trio.sleep(0)
        leaf(label)

    @tracekit.track
    async def spawner() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(trio_leaf, f"s{i}")

    trio.run(spawner)
    spawner_span = tracekit_capture.named("spawner")
    trio_leaves = [s for s in tracekit_capture.spans if s.name == "trio_leaf"]
    assert len(trio_leaves) == 3
    assert {s.parent_id for s in trio_leaves} == {spawner_span.id}
    by_id = {s.id for s in trio_leaves}
    assert {p for p in _parents_by_label(tracekit_capture).values()} <= by_id


def test_trio_start_inherits_the_callers_span(tracekit_capture: Capture) -> None:
    """A task launched with nursery.start inherits the span of the task that called start."""

    @tracekit.track
    async def service(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        leaf("before-started")
        task_status.started()
        leaf("after-started")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with tracekit.span("caller"):
                await nursery.start(service)

    trio.run(main)
    caller = tracekit_capture.named("caller")
    service_span = tracekit_capture.named("service")
    assert service_span.parent_id == caller.id
    assert set(_parents_by_label(tracekit_capture).values()) == {service_span.id}


def test_trio_to_thread_run_sync_carries_the_span(tracekit_capture: Capture) -> None:
    """Work run with trio.to_thread.run_sync nests under the span that called it."""

    @tracekit.track
    async def offload() -> str:
        return await trio.to_thread.run_sync(leaf, "in-thread")

    assert trio.run(offload) == "in-thread"
    assert _parents_by_label(tracekit_capture)["in-thread"] == tracekit_capture.named("offload").id


def test_propagate_carries_the_span_into_a_plain_thread(tracekit_capture: Capture) -> None:
    """A Thread whose target is wrapped by tracekit.propagate nests under the starting span."""
    with tracekit.span("starter") as starter:
        thread = threading.Thread(target=tracekit.propagate(leaf), args=("propagated",))
        thread.start()
        thread.join()
    assert _parents_by_label(tracekit_capture)["propagated"] == starter.id


def test_a_plain_thread_does_not_inherit(tracekit_capture: Capture) -> None:
    """Without propagate, a new thread starts with no active span (a new trace)."""
    with tracekit.span("starter"):
        thread = threading.Thread(target=leaf, args=("plain",))
        thread.start()
        thread.join()
    assert _parents_by_label(tracekit_capture)["plain"] is None


def test_propagate_keeps_the_functions_identity() -> None:
    """propagate() keeps __name__ and __doc__, and rejects a non-callable."""

    def work() -> None:
        """Doc."""

    wrapped = tracekit.propagate(work)
    assert (wrapped.__name__, wrapped.__doc__) == ("work", "Doc.")
    with pytest.raises(TypeError, match="callable"):
        tracekit.propagate(3)  # type: ignore[arg-type]


def test_a_propagated_function_can_run_in_two_threads_at_once(tracekit_capture: Capture) -> None:
    """The same propagated function runs concurrently in several threads without error."""
    barrier = threading.Barrier(4)

    def work(label: str) -> None:
        barrier.wait(timeout=10)
        leaf(label)

    with tracekit.span("starter") as starter:
        bound = tracekit.propagate(work)
        threads = [threading.Thread(target=bound, args=(f"c{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert set(_parents_by_label(tracekit_capture).values()) == {starter.id}


def test_thread_pool_executor_tasks_inherit_the_submitters_span(
    tracekit_capture: Capture,
) -> None:
    """tracekit.ThreadPoolExecutor: submit and map run under the submitting span."""
    with tracekit.ThreadPoolExecutor(max_workers=2) as pool, tracekit.span("submitter") as sub:
        futures = [pool.submit(leaf, f"f{i}") for i in range(4)]
        mapped = list(pool.map(leaf, ["m0", "m1"]))
        assert [f.result() for f in futures] == ["f0", "f1", "f2", "f3"]
    assert mapped == ["m0", "m1"]
    assert set(_parents_by_label(tracekit_capture).values()) == {sub.id}
    assert isinstance(pool, concurrent.futures.ThreadPoolExecutor)


def test_standard_executor_does_not_inherit(tracekit_capture: Capture) -> None:
    """The standard library executor runs tasks with no active span; ours is the opt-in."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool, tracekit.span("s"):
        pool.submit(leaf, "std").result()
    assert _parents_by_label(tracekit_capture)["std"] is None


def test_thread_changes_do_not_leak_back(tracekit_capture: Capture) -> None:
    """A span left open by a propagated thread's code never becomes active in the caller."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller")

    def work() -> None:
        var.set("thread")

    with tracekit.span("s") as s:
        tracekit.propagate(work)()
        assert var.get() == "caller"
        assert tracekit.current_span() is s


def test_async_generator_resumed_from_another_task_logs_no_context_errors(
    tracekit_capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    """Stepping one tracked async generator from two tasks raises and logs nothing about Tokens."""

    @tracekit.track
    async def numbers() -> AsyncGenerator[int, None]:
        for i in range(4):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        agen = numbers()
        first = await asyncio.create_task(agen.__anext__())  # type: ignore[arg-type]
        second = await agen.__anext__()
        rest = await asyncio.create_task(_drain(agen))
        return [first, second, *rest]

    async def _drain(agen: AsyncGenerator[int, None]) -> list[int]:
        return [i async for i in agen]

    assert asyncio.run(main()) == [0, 1, 2, 3]
    assert "different Context" not in caplog.text
    (span,) = tracekit_capture.spans
    assert span.metadata is None
