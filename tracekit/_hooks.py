"""Extension points that integrations fill in, so the core never imports them.

Each is None (or empty) until an integration is installed, and the core
checks it with one attribute load, so an uninstrumented program pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracekit._span import Span

__all__ = ["at_exit", "before_flush", "choose_parent", "end_with_result"]

# `end_with_result(result, span, capture_output)`: called when a tracked call
# returns; True means the integration keeps `span` open and ends it itself
# (e.g. when a returned LiteLLM stream is exhausted).
end_with_result: Callable[[Any, Span, bool], bool] | None = None

# `choose_parent(parent)`: the parent a new span should really have, given the
# active tracekit span (or None) — e.g. a `@opik.track` span opened more
# recently than it.
choose_parent: Callable[[Span | None], Span | None] | None = None

# Called with a timeout by `tracekit.flush()` and at exit, before tracekit's
# own queue is flushed: integrations push out what their library still holds.
before_flush: list[Callable[[float], None]] = []

# Called with a timeout at exit (and SIGTERM) after `before_flush`, before the
# pipeline's last flush: e.g. to log calls that will now never finish.
at_exit: list[Callable[[float], None]] = []
