"""Checked by mypy (not run by pytest): @track keeps the decorated callable's type."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Coroutine, Generator
from typing import Any, assert_type

import tracekit


@tracekit.track
def plain(a: int, b: str = "x") -> float:
    return 1.0


@tracekit.track(name="n", type="tool")
async def coro(a: int) -> str:
    return ""


@tracekit.track
def gen(n: int) -> Generator[int, str, bool]:
    yield n
    return True


@tracekit.track(capture_output=False)
async def agen(n: int) -> AsyncGenerator[int, None]:
    yield n


class Service:
    @tracekit.track
    def method(self, x: int) -> int:
        return x

    @tracekit.track
    @classmethod
    def class_above(cls, x: int) -> str:
        return ""

    @classmethod
    @tracekit.track
    def class_below(cls, x: int) -> str:
        return ""

    @tracekit.track
    @staticmethod
    def static_above(x: int) -> bytes:
        return b""


def check() -> None:
    assert_type(plain(1), float)
    assert_type(plain(1, b="y"), float)
    pending = coro(1)
    _: Coroutine[Any, Any, str] = assert_type(pending, Coroutine[Any, Any, str])
    pending.close()
    assert_type(gen(1), Generator[int, str, bool])
    assert_type(agen(1), AsyncGenerator[int, None])
    assert_type(Service().method(1), int)
    assert_type(Service.class_above(1), str)
    assert_type(Service.class_below(1), str)
    assert_type(Service.static_above(1), bytes)
    assert_type(tracekit.current_span(), tracekit.Span | None)
    assert_type(tracekit.propagate(plain)(1), float)
    plain("wrong")  # type: ignore[arg-type]
