"""Extension points that integrations fill in, so the core never imports them.

Each is None (or empty) until an integration is installed, and the core
checks it with one attribute load, so an uninstrumented program pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracekit._span import Span

__all__ = ["before_flush", "end_with_result", "foreign_parent"]

# `end_with_result(result, span, capture_output)`: called when a tracked call
# returns; True means the integration keeps `span` open and ends it itself
# (e.g. when a returned LiteLLM stream is exhausted).
end_with_result: Callable[[Any, Span, bool], bool] | None = None

# `foreign_parent()`: the span of another tracer active here (e.g. `@opik.track`),
# as a parent for a tracekit span that has no tracekit parent; or None.
foreign_parent: Callable[[], Span | None] | None = None

# Called with a timeout by `tracekit.flush()` and at exit, before tracekit's
# own queue is flushed: integrations push out what their library still holds.
before_flush: list[Callable[[float], None]] = []
