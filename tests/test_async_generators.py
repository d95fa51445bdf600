"""Tracked async generator functions, on asyncio and trio."""

from __future__ import annotations

import gc
import inspect
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
import pytest

import tracekit
from tracekit.testing import Capture

pytestmark = pytest.mark.anyio


@tracekit.track
def leaf(label: str) -> str:
    return label


ECHO_LOGS: list[list[Any]] = []


async def echo_body() -> AsyncGenerator[Any, Any]:
    """Yields what it was sent; answers a thrown ValueError; logs how it ended."""
    log: list[Any] = []
    received = None
    try:
        while True:
            try:
                await anyio.sleep(0)
                received = yield ("got", received)
                log.append(received)
            except ValueError as exc:
                log.append(f"caught {exc}")
                received = "after-throw"
    except GeneratorExit:
        log.append("closed")
        raise
    finally:
        ECHO_LOGS.append(log)


traced_echo = tracekit.track(echo_body)


async def _transcript(factory: Callable[[], AsyncGenerator[Any, Any]]) -> list[Any]:
    ECHO_LOGS.clear()
    agen = factory()
    seen: list[Any] = [inspect.isasyncgen(agen)]
    seen.append(await agen.__anext__())
    seen.append(await agen.asend("a"))
    seen.append(await agen.asend({"b": 2}))
    seen.append(await agen.athrow(ValueError("v")))
    await agen.aclose()
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()
    seen.append(ECHO_LOGS[:])
    return seen


def test_async_generator_function_stays_one() -> None:
    """A tracked async generator function answers isasyncgenfunction like the original."""
    assert inspect.isasyncgenfunction(traced_echo)
    assert not inspect.iscoroutinefunction(traced_echo)


async def test_asend_athrow_aclose_reach_the_body_exactly_as_undecorated(
    tracekit_capture: Capture,
) -> None:
    """asend/athrow/aclose give the same values and body effects with and without @track."""
    assert await _transcript(traced_echo) == await _transcript(echo_body)
    (span,) = tracekit_capture.spans
    assert span.metadata == {"generator_completed": False}
    assert span.output == [("got", None), ("got", "a"), ("got", {"b": 2}), ("got", "after-throw")]


async def test_body_work_nests_under_it_and_consumer_work_does_not(
    tracekit_capture: Capture,
) -> None:
    """Calls in the async generator body are its children; the consumer's between items are not."""

    @tracekit.track
    async def produce() -> AsyncGenerator[str, None]:
        for label in ("body-1", "body-2"):
            await anyio.sleep(0)
            yield leaf(label)

    @tracekit.track
    async def consume() -> list[Any]:
        views = []
        async for item in produce():
            views.append(tracekit.current_span())
            leaf(f"consumer-after-{item}")
            await anyio.sleep(0)
        return views

    views_between_items = await consume()
    labels = {s.input["label"]: s for s in tracekit_capture.spans if s.name == "leaf"}
    generator_span = tracekit_capture.named("produce")
    consumer_span = tracekit_capture.named("consume")
    assert views_between_items == [consumer_span, consumer_span]
    assert generator_span.parent_id == consumer_span.id
    assert labels["body-1"].parent_id == generator_span.id
    assert labels["body-2"].parent_id == generator_span.id
    assert labels["consumer-after-body-1"].parent_id == consumer_span.id
    assert labels["consumer-after-body-2"].parent_id == consumer_span.id


async def test_span_block_around_a_yield_persists_across_it(tracekit_capture: Capture) -> None:
    """An `async with span()` in the body stays its active span across yields."""

    @tracekit.track
    async def produce() -> AsyncGenerator[int, None]:
        async with tracekit.span("inside"):
            yield 1
            leaf("after-yield")
            yield 2

    async with tracekit.span("consumer") as consumer:
        async for _ in produce():
            leaf("consumer")
    inside = tracekit_capture.named("inside")
    leaves = [s for s in tracekit_capture.spans if s.name == "leaf"]
    assert {s.input["label"]: s.parent_id for s in leaves} == {
        "after-yield": inside.id,
        "consumer": consumer.id,
    }


async def test_early_break_then_aclose_ends_the_span_once(tracekit_capture: Capture) -> None:
    """Breaking out of `async for` and closing ends the span once, not completed."""

    @tracekit.track
    async def numbers() -> AsyncGenerator[int, None]:
        for i in range(10):
            yield i

    agen = numbers()
    async for n in agen:
        if n == 1:
            break
    await agen.aclose()
    await agen.aclose()
    (span,) = tracekit_capture.spans
    assert span.output == [0, 1]
    assert span.metadata == {"generator_completed": False}


async def test_exhaustion_ends_the_span_as_completed(tracekit_capture: Capture) -> None:
    """An exhausted async generator's span has all items and no not-completed mark."""

    @tracekit.track
    async def numbers() -> AsyncGenerator[int, None]:
        for i in range(3):
            await anyio.sleep(0)
            yield i

    assert [n async for n in numbers()] == [0, 1, 2]
    (span,) = tracekit_capture.spans
    assert span.output == [0, 1, 2]
    assert span.metadata is None


async def test_an_exception_in_the_body_is_recorded_and_reraised(
    tracekit_capture: Capture,
) -> None:
    """An exception from the body reaches the consumer unchanged and is recorded."""
    error = LookupError("no more")

    @tracekit.track
    async def failing() -> AsyncGenerator[int, None]:
        yield 1
        raise error

    with pytest.raises(LookupError) as raised:
        async for _ in failing():
            pass
    assert raised.value is error
    (span,) = tracekit_capture.spans
    assert span.error_info is not None
    assert span.error_info["message"] == "no more"


async def test_cancellation_inside_the_body_ends_the_span(tracekit_capture: Capture) -> None:
    """A cancel scope that fires while the body awaits ends the span and cancels cleanly."""

    @tracekit.track
    async def slow() -> AsyncGenerator[int, None]:
        yield 1
        await anyio.sleep_forever()
        yield 2  # pragma: no cover

    with anyio.move_on_after(0.01) as scope:
        async for _ in slow():
            pass
    assert scope.cancelled_caught
    (span,) = tracekit_capture.spans
    assert span.metadata is not None
    assert span.metadata["interrupted_by"] in {"CancelledError", "Cancelled"}
    assert span.error_info is None


async def test_garbage_collected_unfinished_async_generator_ends_its_span(
    tracekit_capture: Capture, anyio_backend: str
) -> None:
    """A half-consumed async generator that is dropped is finalized by the event loop.

    Its body's cleanup runs and its span ends once, marked not completed. (trio
    warns about such a generator, decorated or not; asyncio closes it quietly.)
    """
    cleaned = anyio.Event()

    @tracekit.track
    async def numbers() -> AsyncGenerator[int, None]:
        try:
            for i in range(10):
                yield i
        finally:
            cleaned.set()

    agen = numbers()
    assert await agen.__anext__() == 0
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", ResourceWarning)
        del agen
        gc.collect()
    if anyio_backend == "trio":
        assert [w.category for w in warned] == [ResourceWarning]
    with anyio.fail_after(5):
        await cleaned.wait()
    for _ in range(3):  # let the finalizer task finish after the body's cleanup
        await anyio.sleep(0)
    (span,) = tracekit_capture.spans
    assert span.metadata == {"generator_completed": False}
    assert span.output == [0]


async def test_garbage_collected_unstarted_async_generator_ends_its_span(
    tracekit_capture: Capture,
) -> None:
    """An async generator dropped before its first item still ends its span."""

    @tracekit.track
    async def numbers() -> AsyncGenerator[int, None]:
        yield 1

    agen = numbers()
    del agen
    gc.collect()
    (span,) = tracekit_capture.spans
    assert span.metadata == {"generator_completed": False}


async def test_async_generator_method_binds_self(tracekit_capture: Capture) -> None:
    """A tracked async generator method gets its instance and does not capture it."""

    class Source:
        @tracekit.track
        async def items(self, n: int) -> AsyncGenerator[int, None]:
            for i in range(n):
                yield i

    assert [i async for i in Source().items(2)] == [0, 1]
    assert tracekit_capture.spans[0].input == {"n": 2}


def test_an_async_generator_of_strings_records_the_joined_text(
    tracekit_capture: Capture,
) -> None:
    """Async generators follow the same rule: joined text; no output after an error."""
    import asyncio

    @tracekit.track
    async def tokens() -> AsyncIterator[str]:
        yield "Hel"
        yield "lo"

    @tracekit.track
    async def failing() -> AsyncIterator[str]:
        yield "x"
        raise ValueError("stop")

    async def main() -> None:
        assert [t async for t in tokens()] == ["Hel", "lo"]
        with pytest.raises(ValueError, match="stop"):
            async for _ in failing():
                pass

    asyncio.run(main())
    assert tracekit_capture.named("tokens").output == "Hello"
    assert tracekit_capture.named("failing").output is None
