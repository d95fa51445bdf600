"""Carrying the active span into threads, which start with an empty context.

Each call runs in a copy of the context captured at `propagate()`/`submit()`
time: a `Context` can be entered by one thread at a time, and a copy keeps
what the thread changes from leaking back.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["ThreadPoolExecutor", "propagate"]

P = ParamSpec("P")
R = TypeVar("R")


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` bound to the current context: spans it creates, in any thread, nest here.

    For `threading.Thread(target=tracekit.propagate(work))`, `loop.run_in_executor`,
    callbacks and any pool that does not copy context itself.
    """
    if not callable(fn):
        raise TypeError(f"propagate() expects a callable, got {fn!r} ({type(fn).__name__})")
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_captured_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_captured_context


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A `concurrent.futures.ThreadPoolExecutor` whose tasks inherit the submitter's span.

    `submit` (and so `map`) runs each task in a copy of the context of the
    thread that submitted it.
    """

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        captured = contextvars.copy_context()
        return super().submit(captured.run, fn, *args, **kwargs)  # type: ignore[arg-type]
