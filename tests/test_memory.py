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
