"""Tracked generator functions: a real generator whose span is active only in its body."""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

import tracekit
from tracekit.testing import Capture


@tracekit.track
def leaf(label: str) -> str:
    return label


def echo_body() -> Generator[Any, Any, str]:
    """Yields what it was sent; answers a thrown ValueError; logs how it ended."""
    log: list[Any] = []
    received = None
    try:
        while True:
            try:
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
    return "unreachable"


ECHO_LOGS: list[list[Any]] = []
traced_echo = tracekit.track(echo_body)


def _transcript(factory: Callable[[], Generator[Any, Any, Any]]) -> list[Any]:
    """Drive a generator through next/send/throw/close and record everything observable."""
    ECHO_LOGS.clear()
    gen = factory()
    seen: list[Any] = [inspect.getgeneratorstate(gen)]
    seen.append(next(gen))
    seen.append(gen.send("a"))
    seen.append(gen.send({"b": 2}))
    seen.append(gen.throw(ValueError("v")))
    gen.close()
    seen.append(inspect.getgeneratorstate(gen))
    seen.append(ECHO_LOGS[:])
    return seen


def test_generator_result_is_a_real_generator() -> None:
    """A tracked generator function is still one, and its call returns a real generator."""
    assert inspect.isgeneratorfunction(traced_echo)
    gen = traced_echo()
    assert inspect.isgenerator(gen)
    gen.close()


def test_send_throw_and_close_reach_the_body_exactly_as_undecorated(
    tracekit_capture: Capture,
) -> None:
    """next/send/throw/close give the same values and body effects with and without @track."""
    assert _transcript(traced_echo) == _transcript(echo_body)
    (span,) = tracekit_capture.spans
    assert span.metadata == {"generator_completed": False}


def test_return_value_reaches_yield_from(tracekit_capture: Capture) -> None:
    """The generator's return value is StopIteration.value, so `yield from` gets it."""

    @tracekit.track
    def counts() -> Generator[int, None, str]:
        yield 1
        return "done"

    def outer() -> Generator[int, None, str]:
        return (yield from counts())

    gen = outer()
    assert next(gen) == 1
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"
    (span,) = tracekit_capture.spans
    assert span.output == [1]
    assert span.metadata is None


def test_body_work_nests_under_the_generator_and_consumer_work_does_not(
    tracekit_capture: Capture,
) -> None:
    """Calls made in the body are the generator's children; calls made between items are not."""

    @tracekit.track
    def produce() -> Generator[str, None, None]:
        for label in ("body-1", "body-2"):
            yield leaf(label)

    @tracekit.track
    def consume() -> None:
        for item in produce():
            leaf(f"consumer-after-{item}")

    consume()
    by_name = {s.name if s.name != "leaf" else s.input["label"]: s for s in tracekit_capture.spans}
    consumer_span, generator_span = by_name["consume"], by_name["produce"]
    assert generator_span.parent_id == consumer_span.id
    assert by_name["body-1"].parent_id == generator_span.id
    assert by_name["body-2"].parent_id == generator_span.id
    assert by_name["consumer-after-body-1"].parent_id == consumer_span.id
    assert by_name["consumer-after-body-2"].parent_id == consumer_span.id
    assert generator_span.output == "body-1body-2"  # string items are joined


def test_the_consumer_sees_its_own_span_between_items(tracekit_capture: Capture) -> None:
    """While the consumer holds an item, current_span() is the consumer's, not the generator's."""

    @tracekit.track
    def produce() -> Generator[Any, None, None]:
        yield tracekit.current_span()
        yield tracekit.current_span()

    with tracekit.span("consumer") as consumer:
        for body_view in produce():
            assert tracekit.current_span() is consumer
            assert body_view is not consumer
    assert tracekit.current_span() is None


def test_span_block_around_a_yield_persists_across_it(tracekit_capture: Capture) -> None:
    """A `with span()` opened in the body stays the body's active span across its yields."""

    @tracekit.track
    def produce() -> Generator[int, None, None]:
        with tracekit.span("inside"):
            yield 1
            leaf("after-yield")
            yield 2

    with tracekit.span("consumer") as consumer:
        for _ in produce():
            leaf("consumer")
    inside = tracekit_capture.named("inside")
    (after_yield,) = [s for s in tracekit_capture.spans if s.input == {"label": "after-yield"}]
    assert after_yield.parent_id == inside.id
    consumer_leaves = [s for s in tracekit_capture.spans if s.input == {"label": "consumer"}]
    assert all(s.parent_id == consumer.id for s in consumer_leaves)


def test_the_generator_parent_is_the_span_active_at_the_call(tracekit_capture: Capture) -> None:
    """A generator made inside one span and consumed inside another is the first one's child."""

    @tracekit.track
    def produce() -> Generator[int, None, None]:
        yield leaf("body")  # type: ignore[misc]

    with tracekit.span("creator") as creator:
        gen = produce()
    with tracekit.span("consumer") as consumer:
        assert list(gen) == ["body"]
    generator_span = tracekit_capture.named("produce")
    assert generator_span.parent_id == creator.id
    assert tracekit_capture.named("leaf").parent_id == generator_span.id
    assert generator_span.parent_id != consumer.id


def test_early_break_ends_the_span_once_as_not_completed(tracekit_capture: Capture) -> None:
    """Breaking out of the loop (then closing) ends the span once, with the items so far."""

    @tracekit.track
    def numbers() -> Generator[int, None, None]:
        yield from range(10)

    gen = numbers()
    for n in gen:
        if n == 2:
            break
    gen.close()
    gen.close()
    (span,) = tracekit_capture.spans
    assert span.output == [0, 1, 2]
    assert span.metadata == {"generator_completed": False}


def test_exhaustion_ends_the_span_as_completed(tracekit_capture: Capture) -> None:
    """An exhausted generator's span has all items as output and no not-completed mark."""

    @tracekit.track
    def numbers() -> Generator[int, None, None]:
        yield from range(3)

    assert list(numbers()) == [0, 1, 2]
    (span,) = tracekit_capture.spans
    assert span.output == [0, 1, 2]
    assert span.metadata is None


def test_an_exception_in_the_body_is_recorded_and_reraised(tracekit_capture: Capture) -> None:
    """An exception from the body reaches the consumer unchanged and ends the span with it."""
    error = ValueError("bad item")

    @tracekit.track
    def failing() -> Generator[int, None, None]:
        yield 1
        raise error

    with pytest.raises(ValueError, match="bad item") as raised:
        list(failing())
    assert raised.value is error
    (span,) = tracekit_capture.spans
    assert span.error_info is not None
    assert span.error_info["message"] == "bad item"
    assert span.output is None  # a generator that raised records no output, as in Opik


def test_garbage_collected_started_generator_ends_its_span_once(
    tracekit_capture: Capture,
) -> None:
    """Dropping a half-consumed generator ends its span once, marked not completed."""
    closed: list[bool] = []

    @tracekit.track
    def numbers() -> Generator[int, None, None]:
        try:
            yield from range(10)
        finally:
            closed.append(True)

    gen = numbers()
    next(gen)
    del gen
    gc.collect()
    assert closed == [True]
    (span,) = tracekit_capture.spans
    assert span.metadata == {"generator_completed": False}
    assert span.output == [0]


def test_garbage_collected_unstarted_generator_ends_its_span_once(
    tracekit_capture: Capture,
) -> None:
    """A generator dropped before its first item still ends its span, marked not completed."""

    @tracekit.track
    def numbers() -> Generator[int, None, None]:
        yield 1

    gen = numbers()
    del gen
    gc.collect()
    (span,) = tracekit_capture.spans
    assert span.metadata == {"generator_completed": False}
    assert span.end_time is not None


def test_bad_arguments_to_a_generator_function_fail_at_the_call(
    tracekit_capture: Capture,
) -> None:
    """Calling a tracked generator function with wrong arguments raises TypeError at once."""

    @tracekit.track
    def numbers(n: int) -> Generator[int, None, None]:
        yield n

    with pytest.raises(TypeError):
        numbers()  # type: ignore[call-arg]
    (span,) = tracekit_capture.spans
    assert span.error_info is not None
    assert span.error_info["exception_type"] == "TypeError"


def test_capture_output_false_keeps_no_items(tracekit_capture: Capture) -> None:
    """With capture_output=False the yielded items are not kept."""

    @tracekit.track(capture_output=False)
    def numbers() -> Generator[int, None, None]:
        yield from range(3)

    assert list(numbers()) == [0, 1, 2]
    assert tracekit_capture.spans[0].output is None


def test_generator_method_binds_self(tracekit_capture: Capture) -> None:
    """A tracked generator method sees its instance and does not capture it."""

    class Source:
        prefix = "p"

        @tracekit.track
        def items(self, n: int) -> Generator[str, None, None]:
            for i in range(n):
                yield f"{self.prefix}{i}"

    assert list(Source().items(2)) == ["p0", "p1"]
    assert tracekit_capture.spans[0].input == {"n": 2}


def test_a_generator_of_strings_records_the_joined_text_and_others_the_list(
    tracekit_capture: Capture,
) -> None:
    """As Opik records them: "Hel" + "lo" → "Hello"; mixed or other items → the list."""

    @tracekit.track
    def tokens() -> Iterator[str]:
        yield "Hel"
        yield "lo"

    @tracekit.track
    def numbers() -> Iterator[object]:
        yield 1
        yield "two"

    assert list(tokens()) == ["Hel", "lo"]
    assert list(numbers()) == [1, "two"]
    assert tracekit_capture.named("tokens").output == "Hello"
    assert tracekit_capture.named("numbers").output == [1, "two"]


def test_generations_aggregator_chooses_the_output(tracekit_capture: Capture) -> None:
    @tracekit.track(generations_aggregator=lambda items: {"count": len(items)})
    def chunks() -> Iterator[str]:
        yield "a"
        yield "b"

    @tracekit.track(generations_aggregator=lambda items: 1 / 0)
    def broken() -> Iterator[str]:
        yield "a"

    assert list(chunks()) == ["a", "b"]
    assert list(broken()) == ["a"]  # a failing aggregator never breaks the program
    assert tracekit_capture.named("chunks").output == {"count": 2}
    assert tracekit_capture.named("broken").output == ["a"]


def test_generations_aggregator_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"generations_aggregator='join'.*callable"):
        tracekit.track(generations_aggregator="join")  # type: ignore[arg-type]
