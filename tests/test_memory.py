"""A finished trace is freed by reference counting alone, export included.

A span that sat in a reference cycle (a root pointing at itself, a frame
kept by an exception) would wait for the cyclic GC, which in a busy program
also walks every span still queued. With the GC off, the values a trace held
must be gone once it is exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tracekit


class _Value:
    """A traced argument we can watch: alive while any span holds it."""


@tracekit.track
def _child(value: _Value) -> _Value:
    return value


@tracekit.track
def _root(value: _Value) -> list[_Value]:
    _child(value)
    return [value]


@tracekit.track
def _generator(value: _Value) -> Iterator[_Value]:
    yield _child(value)


@tracekit.track
async def _coroutine(value: _Value) -> _Value:
    return _child(value)


@tracekit.track
def _failing(value: _Value) -> None:
    _child(value)
    raise ValueError("the traceback's frames hold the value")


def _fail(value: _Value) -> None:
    with contextlib.suppress(ValueError):
        _failing(value)


class _Service:
    @tracekit.track
    def method(self, value: _Value) -> _Value:
        return _child(value)


def _in_block(value: _Value) -> None:
    with tracekit.span("block", input=value):
        _child(value)


CALLS: dict[str, Callable[[_Value], object]] = {
    "function": _root,
    "generator": lambda value: list(_generator(value)),
    "coroutine": lambda value: asyncio.run(_coroutine(value)),
    "exception": _fail,
    "method": lambda value: _Service().method(value),
    "span block": _in_block,
}


@pytest.fixture
def sqlite_export(tmp_path: Path) -> Iterator[None]:
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "traces.db")
    yield
    tracekit.configure(exporter="none")


@pytest.mark.usefixtures("sqlite_export")
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_an_exported_trace_is_freed_without_the_cyclic_gc(
    call: Callable[[_Value], object],
) -> None:
    call(_Value())  # the first trace starts the export threads (not what is measured)
    assert tracekit.flush(30)
    gc.collect()
    gc.disable()
    try:
        value = _Value()
        watched = weakref.ref(value)
        call(value)
        del value
        assert tracekit.flush(30)
        assert watched() is None, gc.get_referrers(watched())
    finally:
        gc.enable()


@tracekit.track
def _plain(number: int, text: str = "a", *rest: int, **options: float) -> int:
    return number


@pytest.mark.parametrize(
    "call",
    [
        lambda i: _plain(i),
        lambda i: _plain(i, "b", 1, 2, scale=0.5),
        lambda i: _Service().method(i),  # type: ignore[arg-type]
    ],
    ids=["positional", "every kind", "method"],
)
def test_a_queued_span_of_plain_arguments_is_the_only_object_the_gc_walks(
    call: Callable[[int], object],
) -> None:
    """Queued spans wait for the export thread; the cyclic GC walks every tracked
    object they hold, on every full collection, so they hold no tracked object of
    their own but themselves (what every call shares, such as its binder, aside)."""
    queued: list[tracekit.Span] = []
    with tracekit.testing.capture() as spans:
        for i in range(3):
            call(i)
        queued = [span for span in spans.spans if span.name in ("_plain", "method")]
    assert len(queued) == 3
    gc.collect()  # untracks tuples and dicts that hold only atomic values
    own = [{id(ref) for ref in gc.get_referents(span) if gc.is_tracked(ref)} for span in queued]
    shared = set.intersection(*own)
    assert [refs - shared for refs in own] == [set(), set(), set()]
    assert next(iter(queued[2].input.values())) == 2  # still named by parameter later


@tracekit.track(capture_input=False)
def _not_recorded(value: _Value, *, other: _Value | None = None) -> None:
    pass


def test_arguments_not_recorded_are_not_held_by_the_span() -> None:
    """capture_input=False: once the call returns, its span keeps no argument alive."""
    with tracekit.testing.capture() as spans:
        value, other = _Value(), _Value()
        watched = weakref.ref(value), weakref.ref(other)
        _not_recorded(value, other=other)
        del value, other
        gc.collect()
        assert [ref() for ref in watched] == [None, None]
        assert [span.input for span in spans.spans] == [None]
