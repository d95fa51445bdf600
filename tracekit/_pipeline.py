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

__all__ = [
    "SpanProcessor",
    "add_processor",
    "emit",
    "enabled",
    "export_paused",
    "remove_processor",
]

# Called with each finished span, and each score given with `log_feedback`.
SpanProcessor = Callable[["Span | LateFeedback"], None]

# False while tracing is turned off at run time (`set_tracing_active(False)`):
# tracked calls check it first and create no span.
enabled = True

# Replaced whole, never mutated: `emit` reads them without a lock.
_local: tuple[SpanProcessor, ...] = ()  # in-process ones (captures)
_exporters: tuple[SpanProcessor, ...] = ()  # the configured exporter's pipeline
_processors: tuple[SpanProcessor, ...] = ()  # both
_lock = threading.Lock()
# How many `testing.capture()` blocks ask for spans to stay in the process:
# while any does, exporters get nothing (a test run leaves the store alone).
_pauses = 0


def add_processor(processor: SpanProcessor, *, exporter: bool = False) -> None:
    """Send every span that ends from now on to `processor` too.

    An `exporter` gets nothing while export is paused (`export_paused`).
    """
    global _local, _exporters, _processors
    with _lock:
        if exporter:
            _exporters = (*_exporters, processor)
        else:
            _local = (*_local, processor)
        _processors = _local + _exporters


def remove_processor(processor: SpanProcessor) -> None:
    """Stop sending spans to `processor` (a no-op when it was not added)."""
    global _local, _exporters, _processors
    with _lock:
        _local = tuple(p for p in _local if p != processor)
        _exporters = tuple(p for p in _exporters if p != processor)
        _processors = _local + _exporters


class export_paused:
    """While inside, spans reach in-process processors only, not the exporter. Nestable."""

    def __enter__(self) -> None:
        global _pauses
        with _lock:
            _pauses += 1

    def __exit__(self, *exc_info: object) -> None:
        global _pauses
        with _lock:
            _pauses -= 1


def emit(span: Span | LateFeedback) -> None:
    """Hand a finished span (or a late score) to every processor; failures are logged once.

    Spans that end while tracing is off (opened before it was turned off)
    go nowhere.
    """
    if not enabled:
        return
    for processor in _local if _pauses else _processors:
        try:
            processor(span)
        except Exception:
            log_once(f"processor:{processor!r}", "tracekit: span processor %r failed", processor)
