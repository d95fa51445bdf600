"""Drivers that run a generator or async generator under its span.

The span is active only while the body runs: before each resumption the
driver stores the body's own view of the active span, and before handing an
item back it stores the consumer's value again. The body's view is read back
after each step, so a `with tracekit.span()` around a `yield` persists across
yields. Values are stored explicitly, never with `ContextVar.reset(token)`,
because the consumer may resume the generator from another `Context`.

The drivers are themselves generators / async generators, so the caller gets
a real one (`inspect.isgenerator` / `inspect.isasyncgen`), and `send`,
`throw`, `close`, `asend`, `athrow` and `aclose` reach the body.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar

from tracekit._context import active_span
from tracekit._log import log_once
from tracekit._span import Span

__all__ = ["Aggregate", "drive_async_generator", "drive_generator", "joined_text"]

Y = TypeVar("Y")
S = TypeVar("S")
R = TypeVar("R")

# Items kept as the span's output; a long stream keeps its first ones only.
MAX_CAPTURED_ITEMS = 1000

# Makes the span's output of the yielded items (None: no output captured).
Aggregate = Callable[[list[Any]], Any]


def joined_text(items: list[Any]) -> Any:
    """The default output: the joined text when every item is a string, as in Opik."""
    if items and all(type(item) is str for item in items):
        return "".join(items)
    return items


class _EndIfNeverStarted:
    """Ends the span of a generator that is discarded before its first step.

    A generator that never started runs no code when it is collected, so its
    driver cannot end the span itself; this object is an argument of the
    driver, so it lives in the driver's frame and is released with it.
    """

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def __del__(self) -> None:
        span = self.span
        if span._end_ns is None:
            span.metadata = {**(span.metadata or {}), "generator_completed": False}
            span.end()


def _end(
    span: Span, items: list[Any], output: Aggregate | None, error: BaseException | None
) -> None:
    """End the span; a generator that raised records no output, as in Opik."""
    if output is not None and error is None:
        try:
            aggregated = output(items)
        except Exception:
            log_once("generator:aggregate", "tracekit: generations_aggregator failed")
            aggregated = items
        if span._output_fixed:
            span.keep_return_for_trace(aggregated)
        else:
            span.output = aggregated
    if error is None:
        span.end()
    else:
        span.fail(error)


def _end_unfinished(span: Span, items: list[Any], output: Aggregate | None) -> None:
    span.metadata = {**(span.metadata or {}), "generator_completed": False}
    _end(span, items, output, None)


def drive_generator(
    body: Generator[Y, S, R], span: Span, output: Aggregate | None
) -> Generator[Y, S, R]:
    """Run `body` as `span`'s generator; the span ends exactly once, however it stops."""
    return _driven_generator(body, span, output, _EndIfNeverStarted(span))


def _driven_generator(
    body: Generator[Y, S, R], span: Span, output: Aggregate | None, guard: _EndIfNeverStarted
) -> Generator[Y, S, R]:
    get, put = active_span.get, active_span.set
    items: list[Any] = []  # the output, while there is room
    room = MAX_CAPTURED_ITEMS if output is not None else 0
    body_view: Span | None = span
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        consumer_view = get()
        put(body_view)
        try:
            if to_throw is None:
                item = body.send(to_send)
            else:
                thrown, to_throw = to_throw, None
                item = body.throw(thrown)
        except StopIteration as stop:
            put(consumer_view)
            _end(span, items, output, None)
            return stop.value  # type: ignore[no-any-return]
        except BaseException as exc:
            put(consumer_view)
            _end(span, items, output, exc)
            raise
        body_view = get()
        put(consumer_view)
        if room:
            room -= 1
            items.append(item)
        try:
            to_send = yield item
        except GeneratorExit:
            consumer_view = get()
            put(body_view)
            try:
                body.close()
            except BaseException as exc:
                put(consumer_view)
                span.fail(exc)
                raise
            put(consumer_view)
            _end_unfinished(span, items, output)
            raise
        except BaseException as exc:
            to_throw = exc
            to_send = None


def drive_async_generator(
    body: AsyncGenerator[Y, S], span: Span, output: Aggregate | None
) -> AsyncGenerator[Y, S]:
    """Run `body` as `span`'s async generator; no event-loop API is used, so trio works too."""
    return _driven_async_generator(body, span, output, _EndIfNeverStarted(span))


async def _driven_async_generator(
    body: AsyncGenerator[Y, S], span: Span, output: Aggregate | None, guard: _EndIfNeverStarted
) -> AsyncGenerator[Y, S]:
    get, put = active_span.get, active_span.set
    items: list[Any] = []  # the output, while there is room
    room = MAX_CAPTURED_ITEMS if output is not None else 0
    body_view: Span | None = span
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        consumer_view = get()
        put(body_view)
        try:
            if to_throw is None:
                item = await body.asend(to_send)
            else:
                thrown, to_throw = to_throw, None
                item = await body.athrow(thrown)
        except StopAsyncIteration:
            put(consumer_view)
            _end(span, items, output, None)
            return
        except BaseException as exc:
            put(consumer_view)
            _end(span, items, output, exc)
            raise
        body_view = get()
        put(consumer_view)
        if room:
            room -= 1
            items.append(item)
        try:
            to_send = yield item
        except GeneratorExit:
            consumer_view = get()
            put(body_view)
            try:
                await body.aclose()
            except BaseException as exc:
                put(consumer_view)
                span.fail(exc)
                raise
            put(consumer_view)
            _end_unfinished(span, items, output)
            raise
        except BaseException as exc:
            to_throw = exc
            to_send = None
