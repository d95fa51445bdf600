"""A compact tree on stderr each time a trace ends."""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import TextIO

from tracekit._records import Batch, SpanRecord
from tracekit._tree import render_tree

__all__ = ["ConsoleExporter"]

# Spans kept while waiting for their trace to end; beyond it the oldest
# trace's spans are printed as they are.
MAX_BUFFERED_SPANS = 10_000


class ConsoleExporter:
    """Prints every finished trace as an indented tree."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._pending: OrderedDict[str, list[SpanRecord]] = OrderedDict()
        self._buffered = 0

    def _print(self, spans: list[SpanRecord]) -> None:
        stream = self._stream or sys.stderr
        stream.write(render_tree(spans) + "\n")
        stream.flush()

    def export(self, batch: Batch) -> None:
        for span in batch.spans:
            self._pending.setdefault(span.trace_id, []).append(span)
            self._buffered += 1
        for trace in batch.traces:
            spans = self._pending.pop(trace.id, [])
            self._buffered -= len(spans)
            if spans:
                self._print(spans)
        while self._buffered > MAX_BUFFERED_SPANS and self._pending:
            _, spans = self._pending.popitem(last=False)
            self._buffered -= len(spans)
            self._print(spans)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        for spans in self._pending.values():
            self._print(spans)
        self._pending.clear()
        self._buffered = 0
