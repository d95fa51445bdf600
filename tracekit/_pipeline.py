"""Where finished spans go: an ordered tuple of processors called on span end.

Processors are called on the thread that ended the span, so each must be
cheap (append to a list, put on a queue). A failing processor is logged once
and never reaches the traced program.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from tracekit._log import log_once

if TYPE_CHECKING:
    from tracekit._feedback import LateFeedback
    from tracekit._span import Span

__all__ = ["SpanProcessor", "add_processor", "emit", "enabled", "remove_processor"]

# Called with each finished span, and each score given with `log_feedback`.
SpanProcessor = Callable[["Span | LateFeedback"], None]

# False while tracing is turned off at run time (`set_tracing_active(False)`):
# tracked calls check it first and create no span.
enabled = True

# Replaced whole, never mutated: `emit` reads it without a lock.
_processors: tuple[SpanProcessor, ...] = ()
_lock = threading.Lock()


def add_processor(processor: SpanProcessor) -> None:
    """Send every span that ends from now on to `processor` too."""
    global _processors
    with _lock:
        _processors = (*_processors, processor)


def remove_processor(processor: SpanProcessor) -> None:
    """Stop sending spans to `processor` (a no-op when it was not added)."""
    global _processors
    with _lock:
        _processors = tuple(p for p in _processors if p != processor)


def emit(span: Span | LateFeedback) -> None:
    """Hand a finished span (or a late score) to every processor; failures are logged once.

    Spans that end while tracing is off (opened before it was turned off)
    go nowhere.
    """
    if not enabled:
        return
    for processor in _processors:
        try:
            processor(span)
        except Exception:
            log_once(f"processor:{processor!r}", "tracekit: span processor %r failed", processor)
