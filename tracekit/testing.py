"""In-memory capture of finished spans, for your tests (and ours).

    with tracekit.testing.capture() as captured:
        my_app()
    assert [s.name for s in captured.spans] == ["step", "my_app"]

With pytest, the `tracekit_capture` fixture does the same for one test.
Captured spans are not exported (`capture(export=True)` exports them too).
"""

from __future__ import annotations

import threading
from types import TracebackType

from tracekit._feedback import LateFeedback
from tracekit._pipeline import add_processor, export_paused, remove_processor
from tracekit._records import (
    FeedbackRecord,
    TraceRecord,
    feedback_record,
    span_record,
    trace_record,
)
from tracekit._span import Span
from tracekit._tree import render_tree

__all__ = ["Capture", "FeedbackRecord", "TraceRecord", "capture"]


class Capture:
    """Collects every span that ends, from any thread, while it is active."""

    def __init__(self, export: bool = False) -> None:
        self._export = export
        self._paused: export_paused | None = None
        self._spans: list[Span] = []
        self._feedback: list[LateFeedback] = []
        self._lock = threading.Lock()

    def _record(self, item: Span | LateFeedback) -> None:
        with self._lock:
            if isinstance(item, Span):
                self._spans.append(item)
            else:
                self._feedback.append(item)

    @property
    def spans(self) -> list[Span]:
        """Finished spans, in the order they ended."""
        with self._lock:
            return list(self._spans)

    @property
    def traces(self) -> list[TraceRecord]:
        """The traces whose root span ended, in the order they ended."""
        return [trace_record(s) for s in self.spans if s.is_root]

    @property
    def feedback(self) -> list[FeedbackRecord]:
        """Scores given with `tracekit.log_feedback`, in the order they were given.

        (Scores given with `update_current_span/trace` are on the span or trace.)
        """
        with self._lock:
            return [feedback_record(late) for late in self._feedback]

    def named(self, name: str) -> Span:
        """The one finished span called `name`; fails when there is none or several."""
        found = [s for s in self.spans if s.name == name]
        if len(found) != 1:
            raise LookupError(
                f"expected one span named {name!r}, found {len(found)}:\n{self.tree()}"
            )
        return found[0]

    def tree(self) -> str:
        """The captured traces as indented text."""
        return render_tree(span_record(s) for s in self.spans)

    def clear(self) -> None:
        """Forget what was captured so far."""
        with self._lock:
            self._spans.clear()
            self._feedback.clear()

    def __enter__(self) -> Capture:
        if not self._export:
            self._paused = export_paused()
            self._paused.__enter__()
        add_processor(self._record)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        remove_processor(self._record)
        if self._paused is not None:
            self._paused.__exit__(exc_type, exc, tb)
            self._paused = None


def capture(*, export: bool = False) -> Capture:
    """A context manager collecting finished spans in memory: `.spans`, `.traces`, `.tree()`.

    While it is active, spans stay in the process: the configured exporter
    (the local SQLite file, Opik) gets none of them — from any thread — so a
    test run leaves your store alone. `export=True` exports them as well.
    """
    return Capture(export=export)
