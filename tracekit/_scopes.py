"""`span()`, `context()` and the `update_current_*` helpers: explicit scopes on the stack."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tracekit import _config
from tracekit._context import (
    AsyncWithToo,
    ContextDefaults,
    active_span,
    context_defaults,
    current_span,
)
from tracekit._feedback import feedback_scores as checked_scores
from tracekit._log import log_once
from tracekit._span import Span, SpanType
from tracekit._validate import mapping_copy, optional_str, span_type, str_tuple, type_name

__all__ = [
    "TraceInfo",
    "context",
    "current_trace",
    "span",
    "update_current_span",
    "update_current_trace",
]


class span(AsyncWithToo[Span]):
    """A span around a block: `with tracekit.span("step", type="tool") as s:`.

    Also `async with`. The span is a child of the span active where the block
    is entered and is active inside it; an exception leaving the block is
    recorded in `error_info` and propagates unchanged.

    Blocks may exit out of order (manual `__exit__`/`__aexit__` calls); the
    active span is then always the innermost block still open, never an
    ended span. Exiting a block ends only its own span: a block opened inside
    it and still open stays active, and when that one exits, its nearest
    ancestor still open becomes active. No span is ended early and no span's
    parent changes.
    """

    __slots__ = ("_input", "_metadata", "_name", "_parent", "_span", "_tags", "_type")

    def __init__(
        self,
        name: str,
        *,
        type: SpanType = "general",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"span(name={name!r}): expected a str, got {type_name(name)}")
        self._name = name
        self._type = span_type("span", type)
        self._input = input
        self._metadata = mapping_copy("span", "metadata", metadata)
        self._tags = str_tuple("span", "tags", tags)
        self._parent: Span | None = None
        self._span: Span | None = None

    def __enter__(self) -> Span:
        if self._span is not None:
            raise RuntimeError(f"span({self._name!r}) was entered twice; create one per block")
        self._parent = active_span.get()
        opened = self._span = Span(
            self._name,
            self._type,
            self._parent,
            input=self._input,
            tags=self._tags,
            metadata=self._metadata,
        )
        active_span.set(opened)
        return opened

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        opened = self._span
        assert opened is not None
        # Another active span means this block exits out of order, before a
        # block opened inside it: that block is still open and stays active.
        if active_span.get() is opened:
            restore = self._parent
            if restore is not None and restore._end_ns is not None:
                restore = _innermost_open(restore)  # the parent's block exited first
            active_span.set(restore)
        if exc is None:
            opened.end()
        else:
            opened.fail(exc)


def _innermost_open(candidate: Span | None) -> Span | None:
    """`candidate` or its nearest ancestor that has not ended, never a stand-in for another tracer.

    A stand-in (`Span.foreign`) for another tracer's span (`@opik.track`)
    has no parent: past it the tracekit stack is empty. One for another
    service's span (`continue_trace`) has, as parent, what was active before
    its block.
    """
    while candidate is not None and (candidate._end_ns is not None or candidate._foreign):
        candidate = candidate._parent
    return candidate


class context(AsyncWithToo[None]):
    """Defaults for every span, trace and LLM call made inside the block.

    `project_name` and `thread_id` apply to traces that start inside;
    `tags` and `metadata` are added to every span created inside. Nested
    blocks add to the outer ones. Also `async with`.
    """

    __slots__ = ("_defaults", "_previous")

    def __init__(
        self,
        *,
        project_name: str | None = None,
        tags: Iterable[str] | None = None,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._defaults = (
            optional_str("context", "project_name", project_name),
            str_tuple("context", "tags", tags),
            optional_str("context", "thread_id", thread_id),
            mapping_copy("context", "metadata", metadata) or {},
        )
        self._previous: ContextDefaults | None = None

    def __enter__(self) -> None:
        project_name, tags, thread_id, metadata = self._defaults
        outer = self._previous = context_defaults.get()
        if outer is not None:
            project_name = project_name or outer.project_name
            thread_id = thread_id or outer.thread_id
            tags = (*outer.tags, *(t for t in tags if t not in outer.tags))
            metadata = {**outer.metadata, **metadata}
        context_defaults.set(ContextDefaults(project_name, tags, thread_id, metadata))

    def __exit__(self, *exc_info: object) -> None:
        context_defaults.set(self._previous)


def update_current_span(
    *,
    name: str | None = None,
    input: Any = None,
    output: Any = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    usage: Mapping[str, Any] | None = None,
    model: str | None = None,
    provider: str | None = None,
    total_cost: float | None = None,
    error_info: Mapping[str, Any] | None = None,
    feedback_scores: Iterable[Mapping[str, Any]] | None = None,
) -> None:
    """Update the active span (see `Span.update`); with none active, log once and do nothing.

    Bad `feedback_scores` raise even with no active span, as in `update_current_trace`.
    """
    if feedback_scores is not None:
        checked_scores(feedback_scores, "update_current_span")
    current = current_span()
    if current is None:
        log_once(
            "update_current_span:none",
            "tracekit: update_current_span() called with no active span; ignored",
            exc_info=False,
        )
        return
    current.update(
        name=name,
        input=input,
        output=output,
        metadata=metadata,
        tags=tags,
        usage=usage,
        model=model,
        provider=provider,
        total_cost=total_cost,
        error_info=error_info,
        feedback_scores=feedback_scores,
    )


def update_current_trace(
    *,
    name: str | None = None,
    input: Any = None,
    output: Any = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    thread_id: str | None = None,
    feedback_scores: Iterable[Mapping[str, Any]] | None = None,
) -> None:
    """Set fields of the active trace; `metadata` merges, `tags` extend.

    `feedback_scores` are added to the trace's (a same-named score is
    replaced; see `Span.update`). With no active span, log once and do nothing.
    """
    scores = (
        None if feedback_scores is None else checked_scores(feedback_scores, "update_current_trace")
    )
    current = current_span()
    if current is None:
        log_once(
            "update_current_trace:none",
            "tracekit: update_current_trace() called with no active span; ignored",
            exc_info=False,
        )
        return
    if (current._root or current)._foreign:
        log_once(
            "update_current_trace:foreign",
            "tracekit: update_current_trace() in a trace continued from another service "
            "or tracer; the trace is theirs, its fields are set there; ignored",
            exc_info=False,
        )
        return
    current.update_trace(
        name=name,
        input=input,
        output=output,
        metadata=dict(metadata) if metadata else None,
        tags=list(tags) if tags else None,
        thread_id=thread_id,
        feedback_scores=scores or None,
    )


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """The trace the active span belongs to (Opik: `get_current_trace_data()`)."""

    id: str
    name: str | None
    project_name: str | None
    thread_id: str | None


def current_trace() -> TraceInfo | None:
    """The active span's trace: its id, name, project and thread; None with no active span.

    Name and thread include what `update_current_trace()` set.
    """
    current = active_span.get()
    if current is None:
        return None
    root = current._root or current
    updates, base = current.trace_updates, current.trace_base
    return TraceInfo(
        id=current.trace_id,
        name=None if root._foreign else updates.get("name", base.get("name", root.name)),
        project_name=root.project_name or _config.default_project(),
        thread_id=updates.get("thread_id", root.thread_id),
    )
