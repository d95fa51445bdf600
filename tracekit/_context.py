"""The active span, and the defaults set by `tracekit.context()`.

Each lives in one `ContextVar` holding an immutable value: a push stores a new
value and a pop stores the previous one back. Nothing here uses
`ContextVar.reset(token)`, because tokens break when a generator, an async
generator or a finalizer resumes in another `Context`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tracekit import _hooks

if TYPE_CHECKING:
    from tracekit._span import Span

__all__ = [
    "AsyncWithToo",
    "ContextDefaults",
    "active_span",
    "context_defaults",
    "current_span",
    "innermost_parent",
]

T = TypeVar("T")


class AsyncWithToo(Generic[T]):
    """A context manager that works with `async with` too: entering awaits nothing."""

    __slots__ = ()

    if TYPE_CHECKING:  # what subclasses define

        def __enter__(self) -> T: ...
        def __exit__(self, *exc_info: Any, **_: Any) -> None: ...

    async def __aenter__(self) -> T:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


class ContextDefaults:
    """What `tracekit.context()` asks of every span created inside it. Immutable."""

    __slots__ = ("metadata", "project_name", "tags", "thread_id")

    def __init__(
        self,
        project_name: str | None,
        tags: tuple[str, ...],
        thread_id: str | None,
        metadata: Mapping[str, Any],
    ) -> None:
        self.project_name = project_name
        self.tags = tags
        self.thread_id = thread_id
        self.metadata = metadata


active_span: ContextVar[Span | None] = ContextVar("tracekit.active_span", default=None)
context_defaults: ContextVar[ContextDefaults | None] = ContextVar(
    "tracekit.context_defaults", default=None
)


def current_span() -> Span | None:
    """The span active here: the innermost tracked call or `span()` block, or None.

    Never a stand-in for another tracer's or service's span (`continue_trace`).
    """
    current = active_span.get()
    return None if current is None or current._foreign else current


def innermost_parent() -> Span | None:
    """The parent a span opened here would get: the active span, or what a
    `choose_parent` hook prefers (the current `@opik.track` span)."""
    parent = active_span.get()
    for choose in _hooks.choose_parent:
        parent = choose(parent)
    return parent
