"""Records: what a finished span or trace looks like to an exporter.

Built on the exporter's thread from `Span` objects, with every user value
passed through a `safe` function (JSON-safe, bounded, redacted). A root span
yields both its span record and its trace record, as Opik models a trace: it
takes its name, input, output and times from the root, its project, thread
and tags from the root's context, and whatever `update_current_trace()` set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracekit._feedback import FeedbackScore, LateFeedback
from tracekit._span import GivenError, Span, utc_datetime

__all__ = [
    "Batch",
    "FeedbackRecord",
    "FeedbackScore",
    "SpanRecord",
    "TraceRecord",
    "feedback_record",
    "span_record",
    "trace_record",
]

Safe = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


# Not frozen: a frozen dataclass's __init__ costs ~2 µs more per record, on
# the export thread's hot path. Treat records as read-only all the same.
@dataclass(slots=True, kw_only=True)
class _Record:
    """What spans and traces share."""

    id: str
    name: str
    start_ns: int  # Unix time in nanoseconds
    end_ns: int | None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    project_name: str | None = None
    thread_id: str | None = None
    error_info: dict[str, str] | None = None
    # Stored apart from the other fields (a score may arrive after the record).
    feedback_scores: list[FeedbackScore] = field(default_factory=list)

    @property
    def start_time(self) -> datetime:
        return utc_datetime(self.start_ns)

    @property
    def end_time(self) -> datetime | None:
        return None if self.end_ns is None else utc_datetime(self.end_ns)

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6


@dataclass(slots=True, kw_only=True)
class SpanRecord(_Record):
    """One finished span, ready to export."""

    trace_id: str
    parent_id: str | None
    type: str
    usage: dict[str, Any] | None = None
    model: str | None = None
    provider: str | None = None
    total_cost: float | None = None


@dataclass(slots=True, kw_only=True)
class TraceRecord(_Record):
    """One trace, derived from its root span when the root ends."""


@dataclass(slots=True, kw_only=True)
class FeedbackRecord:
    """A score given to a span or trace after it was exported (`tracekit.log_feedback`)."""

    trace_id: str
    span_id: str | None  # None: the score is the trace's
    name: str
    value: float
    reason: str | None = None
    category_name: str | None = None
    project_name: str | None = None
    created_ns: int  # when the score was given

    @classmethod
    def of(
        cls, score: FeedbackScore, trace_id: str, span_id: str | None, project_name: str | None
    ) -> FeedbackRecord:
        """The record of `score`, given to span `span_id` (None: the trace) of `trace_id`."""
        return cls(
            trace_id=trace_id,
            span_id=span_id,
            name=score.name,
            value=score.value,
            reason=score.reason,
            category_name=score.category_name,
            project_name=project_name,
            created_ns=score.given_ns,
        )

    @property
    def score(self) -> FeedbackScore:
        return FeedbackScore(
            self.name, self.value, self.reason, self.category_name, self.created_ns
        )


@dataclass(slots=True)
class Batch:
    """What an exporter receives at once."""

    spans: list[SpanRecord] = field(default_factory=list)
    traces: list[TraceRecord] = field(default_factory=list)
    feedback: list[FeedbackRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.traces) + len(self.feedback)


def _error_info(span: Span, safe: Safe) -> dict[str, str] | None:
    info = span.error_info
    if info is None:
        return None
    tail = getattr(safe, "tail", None)
    if tail is not None:  # a traceback's end says where and what: keep it, scrubbed
        info = {**info, "traceback": tail(info["traceback"])}
    converted = safe(info)  # bounded, scrubbed and storable like every other value
    if not isinstance(converted, dict):
        converted = {}
    # Whatever the budget left, error_info keeps its shape: Opik requires it.
    return {key: text if isinstance(text := converted.get(key), str) else "" for key in info}


def _text(safe: Safe, value: str | None) -> str | None:
    """A name-like field: storable and scrubbed like any value (None stays None).

    It identifies the record, so the span's byte budget never replaces it
    (see `SafeConverter.name`).
    """
    if value is None:
        return None
    name = getattr(safe, "name", None)
    if name is not None and isinstance(value, str):
        return str(name(value))
    return _value_text(safe, value)


def _value_text(safe: Safe, value: str | None) -> str | None:
    """Free text such as a score's reason: bounded by the span's budget like any value."""
    if value is None:
        return None
    text = safe(value)
    return text if isinstance(text, str) else str(text)


def _texts(safe: Safe, values: Iterable[str] | None) -> list[str]:
    if not values:
        return []
    return [text for value in values or () if (text := _text(safe, value)) is not None]


def _scores(safe: Safe, scores: Iterable[FeedbackScore]) -> list[FeedbackScore]:
    """Scores with their texts scrubbed and bounded like every other value."""
    if not scores:
        return []
    return [
        FeedbackScore(
            _text(safe, score.name) or "",
            score.value,
            _value_text(safe, score.reason),
            _text(safe, score.category_name),
            score.given_ns,
        )
        for score in scores
    ]


def feedback_record(
    late: LateFeedback, safe: Safe = _identity, project_name: str | None = None
) -> FeedbackRecord:
    """The record of a score given with `log_feedback`, filed under `project_name`."""
    (score,) = _scores(safe, (late.score,))
    project = _text(safe, late.project_name or project_name)
    return FeedbackRecord.of(score, late.trace_id, late.span_id, project)


def span_record(
    span: Span, safe: Safe = _identity, default_project: str | None = None
) -> SpanRecord:
    """The record of a finished `span`."""
    # First: the error is what a reader needs most, when the span's budget runs out.
    # (Fields most spans leave unset are tested here, not converted: this runs
    # once per span on the export thread, under the traced program's GIL.)
    error_info = None if span._exception is None else _error_info(span, safe)
    metadata = safe(span.metadata) if span.metadata else None
    project = span.project_name or default_project
    tags, thread, model, provider = span.tags, span.thread_id, span.model, span.provider
    return SpanRecord(
        id=span.id,
        trace_id=span.trace_id,
        parent_id=span.parent_id,
        name=_text(safe, span.name) or "",
        type=span.type,
        start_ns=span._start_ns,
        end_ns=span._end_ns,
        input=safe(span.input),
        output=safe(span.output),
        metadata=metadata,
        tags=_texts(safe, tags) if tags else [],
        project_name=None if project is None else _text(safe, project),
        thread_id=None if thread is None else _text(safe, thread),
        usage=safe(span.usage) if span.usage else None,
        model=None if model is None else _text(safe, model),
        provider=None if provider is None else _text(safe, provider),
        total_cost=span.total_cost,
        error_info=error_info,
        feedback_scores=[] if span._feedback is None else _scores(safe, span.feedback_scores),
    )


def _trace_input(updates: Mapping[str, Any], safe: Safe, root_input: Any) -> Any:
    """The root's input, with `update_current_trace(input=...)` merged in (a mapping) or instead."""
    if "input" not in updates:
        return root_input
    given = safe(updates["input"])
    if isinstance(given, dict) and isinstance(root_input, dict):
        return {**root_input, **given}
    return given


def _trace_of(root: SpanRecord, span: Span) -> TraceRecord:
    """The trace of a root span that no `update()` or `update_current_trace()` touched.

    Its fields are the root's record's (already converted): shared, not copied.
    """
    return TraceRecord(
        id=span.trace_id,
        name=root.name,
        start_ns=root.start_ns,
        end_ns=root.end_ns,
        input=root.input,
        output=root.output,
        metadata=root.metadata,
        tags=list(dict.fromkeys(root.tags)) if root.tags else [],
        project_name=root.project_name,
        thread_id=root.thread_id,
        error_info=None if isinstance(span._exception, GivenError) else root.error_info,
    )


def trace_record(
    root: Span,
    safe: Safe = _identity,
    default_project: str | None = None,
    root_record: SpanRecord | None = None,
) -> TraceRecord:
    """The record of the trace that the finished root span `root` stands for.

    Pass the root's `root_record` to reuse its converted input and output.
    """
    updates = root.trace_updates
    if root_record is None:
        root_record = span_record(root, safe, default_project)
    if not updates and root._trace_base is None:
        return _trace_of(root_record, root)
    # The trace keeps the root's fields as created; update_current_trace sets its own.
    base = root.trace_base
    tags = [*(base.get("tags", root.tags) or ()), *updates.get("tags", ())]
    metadata = {**(base.get("metadata", root.metadata) or {}), **updates.get("metadata", {})}
    root_input = safe(base["input"]) if "input" in base else root_record.input
    if "output" in updates:
        output = safe(updates["output"])
    elif "output" in base:
        output = safe(base["output"])
    else:
        output = root_record.output
    return TraceRecord(
        id=root.trace_id,
        name=_text(safe, updates.get("name", base.get("name", root.name))) or "",
        start_ns=root._start_ns,
        end_ns=root._end_ns,
        input=_trace_input(updates, safe, root_input),
        output=output,
        metadata=safe(metadata) if metadata else None,
        tags=list(dict.fromkeys(_texts(safe, tags))),
        project_name=_text(safe, root.project_name or default_project),
        thread_id=_text(safe, updates.get("thread_id", root.thread_id)),
        # An error_info set by hand on the root is the span's; an exception is the trace's too.
        error_info=None if isinstance(root._exception, GivenError) else root_record.error_info,
        feedback_scores=_scores(safe, list(updates.get("feedback_scores", {}).values())),
    )
