"""One trace across services: Opik's distributed-trace headers, both ways.

The calling side sends `distributed_headers()` with its request:
`{"opik_trace_id": ..., "opik_parent_span_id": ...}`, the names and values
`opik_context.get_distributed_trace_headers()` uses, so an `@opik.track`
service can take them as `opik_distributed_trace_headers=`. The receiving
side wraps its handler in `continue_trace(headers)`: spans opened inside
join that trace under that parent, and no trace record is sent (the trace
belongs to the caller). Inside, a stand-in for the remote parent
(`Span.foreign`) is the active span: it is never ended nor exported, and
`current_span()` does not return it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from time import time_ns
from typing import Any

from tracekit._context import AsyncWithToo, active_span, context_defaults
from tracekit._log import log_once
from tracekit._span import Span
from tracekit._validate import optional_str

__all__ = ["PARENT_HEADER", "TRACE_HEADER", "continue_trace", "distributed_headers"]

TRACE_HEADER = "opik_trace_id"
PARENT_HEADER = "opik_parent_span_id"


def distributed_headers() -> dict[str, str]:
    """Headers that carry the active span to another service; `{}` with no active span."""
    current = active_span.get()
    if current is None:
        return {}
    return {TRACE_HEADER: current.trace_id, PARENT_HEADER: current.id}


def _header_name(name: Any) -> str:
    """`Opik-Trace-Id`, `opik_trace_id`, `b"opik-trace-id"`: one name."""
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return str(name).strip().lower().replace("-", "_")


def _pairs(headers: Any) -> Iterable[tuple[Any, Any]]:
    """(name, value) pairs of a mapping, anything with `items()` (`http.server`'s
    headers, WSGI/ASGI frameworks' header objects) or a list of pairs."""
    items = getattr(type(headers), "items", None)
    if callable(items):
        return items(headers)  # type: ignore[no-any-return]
    if isinstance(headers, Iterable) and not isinstance(headers, str | bytes):
        return (
            (pair[0], pair[1])
            for pair in headers
            if isinstance(pair, tuple | list) and len(pair) == 2
        )
    return ()


def _uuid7(value: Any) -> str | None:
    """`value` as a canonical UUIDv7 string (what Opik requires of ids), or None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    import uuid  # here, not at `import tracekit`: it loads `platform` (~3 ms)

    try:
        parsed = uuid.UUID(value.strip())
    except ValueError:
        return None
    return str(parsed) if parsed.version == 7 else None


def _parent_from(headers: Any) -> tuple[str, str] | None:
    """(trace id, parent span id) from the headers; None (warned once) when unusable."""
    found: dict[str, Any] = {}
    try:
        for name, value in _pairs(headers):
            key = _header_name(name)
            if key in (TRACE_HEADER, PARENT_HEADER):
                found[key] = value
        trace_id, parent_id = _uuid7(found.get(TRACE_HEADER)), _uuid7(found.get(PARENT_HEADER))
    except Exception:  # a hostile mapping or value: treated as no headers
        trace_id = parent_id = None
    if trace_id is None or parent_id is None:
        problem = (
            f"the {TRACE_HEADER} and {PARENT_HEADER} headers are not both UUIDv7 ids"
            if found
            else f"no {TRACE_HEADER} and {PARENT_HEADER} headers"
        )
        log_once(
            "continue_trace:headers",
            "tracekit: continue_trace(): %s; spans inside are not joined to another trace "
            "(said once per process)",
            problem,
            exc_info=False,
        )
        return None
    return trace_id, parent_id


def _still_open(candidate: Span | None) -> Span | None:
    """`candidate`, or its nearest ancestor (a stand-in's: what was active before it) not ended."""
    while candidate is not None and candidate._end_ns is not None:
        candidate = candidate._parent
    return candidate


class continue_trace(AsyncWithToo[None]):
    """Spans opened inside join the trace the headers carry, under its span.

    `with tracekit.continue_trace(request.headers):` (also `async with`).
    Header names are matched without regard to case, `-` or `_`. Missing or
    invalid headers (ids must be UUIDv7) join nothing, with one warning:
    spans inside go where they would without this block. Headers never make
    it raise. The spans go to `project_name`, else the project of
    an enclosing `tracekit.context()`, else the configured one: a trace's
    spans must share its project, so give the caller's project if it differs.
    """

    __slots__ = ("_entered", "_headers", "_previous", "_project_name", "_stand_in")

    def __init__(
        self, headers: Mapping[str, Any] | Any, *, project_name: str | None = None
    ) -> None:
        self._headers = headers
        self._project_name = optional_str("continue_trace", "project_name", project_name)
        self._previous: Span | None = None
        self._stand_in: Span | None = None
        self._entered = False

    def __enter__(self) -> None:
        if self._entered:
            raise RuntimeError("continue_trace() was entered twice; create one per block")
        self._entered = True
        self._previous = active_span.get()
        parent = _parent_from(self._headers)
        if parent is None:
            return
        project = self._project_name
        if project is None and (defaults := context_defaults.get()) is not None:
            project = defaults.project_name
        trace_id, parent_id = parent
        stand_in = self._stand_in = Span.foreign(parent_id, trace_id, project, None)
        stand_in._parent = self._previous  # where a span that outlives the block returns to
        active_span.set(stand_in)

    def __exit__(self, *exc_info: object) -> None:
        self._entered = False
        stand_in = self._stand_in
        if stand_in is None:
            return
        self._stand_in = None
        # Ended, never exported: a span opened inside and closed after the
        # block, or a block exited out of order, then skips it (_still_open).
        stand_in._end_ns = time_ns()
        if active_span.get() is stand_in:
            active_span.set(_still_open(self._previous))
