"""The span model: ids, clocks, fields, updates and the trace it belongs to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

import tracekit
from tracekit.testing import Capture


def _as_uuid7(text: str) -> uuid.UUID:
    value = uuid.UUID(text)
    assert str(value) == text
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    return value


def _uuid7_time(value: uuid.UUID) -> datetime:
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def test_ids_are_uuid7_strings_stamped_with_the_start_time(tracekit_capture: Capture) -> None:
    """Span and trace ids are canonical UUIDv7 strings whose timestamp is the span's start."""
    with tracekit.span("root") as root, tracekit.span("child") as child:
        pass
    for span in (root, child):
        for text in (span.id, span.trace_id):
            stamped = _uuid7_time(_as_uuid7(text))
            assert abs(stamped - root.start_time) < timedelta(milliseconds=2)
    assert len({root.id, root.trace_id, child.id}) == 3


def test_ids_are_unique_across_many_spans(tracekit_capture: Capture) -> None:
    """Ten thousand spans made in a burst get ten thousand distinct ids."""
    for _ in range(10_000):
        with tracekit.span("s"):
            pass
    ids = {s.id for s in tracekit_capture.spans} | {s.trace_id for s in tracekit_capture.spans}
    assert len(ids) == 20_000


def test_times_are_timezone_aware_utc_and_ordered(tracekit_capture: Capture) -> None:
    """start_time and end_time are UTC-aware datetimes with start <= end."""
    before = datetime.now(UTC)
    with tracekit.span("s") as s:
        assert s.end_time is None
    after = datetime.now(UTC)
    assert s.start_time.tzinfo is UTC
    assert s.end_time is not None
    assert s.end_time.tzinfo is UTC
    assert before - timedelta(milliseconds=1) <= s.start_time <= s.end_time
    assert s.end_time <= after + timedelta(milliseconds=1)


def test_a_root_has_no_parent_and_children_share_its_trace(tracekit_capture: Capture) -> None:
    """A root's parent_id is None; a child's is the parent's id and its trace_id the root's."""
    with tracekit.span("root") as root, tracekit.span("child") as child:
        pass
    assert root.parent_id is None
    assert child.parent_id == root.id
    assert child.trace_id == root.trace_id


def test_span_is_accepted_as_litellm_current_span_data() -> None:
    """A Span exposes `id` and `trace_id` as strings, which is all LiteLLM reads."""
    span = tracekit.Span("s")
    assert isinstance(span.id, str)
    assert isinstance(span.trace_id, str)


def test_update_sets_fields_merges_metadata_and_extends_tags(tracekit_capture: Capture) -> None:
    """update() sets scalars, merges metadata into what was there and appends tags."""
    with tracekit.span("s", metadata={"a": 1}, tags=["x"]) as s:
        s.update(
            output={"answer": 42},
            metadata={"b": 2},
            tags=["y"],
            usage={"prompt_tokens": 3},
            model="gpt-4o-mini",
            provider="openai",
            total_cost=0.5,
            name="renamed",
            input={"q": "?"},
        )
    assert s.output == {"answer": 42}
    assert s.metadata == {"a": 1, "b": 2}
    assert s.tags == ["x", "y"]
    assert s.usage == {"prompt_tokens": 3}
    assert (s.model, s.provider, s.total_cost, s.name) == ("gpt-4o-mini", "openai", 0.5, "renamed")
    assert s.input == {"q": "?"}


def test_update_never_mutates_the_callers_dicts(tracekit_capture: Capture) -> None:
    """Metadata and tags given to span() or update() are copied, not modified."""
    metadata = {"a": 1}
    tags = ["x"]
    with tracekit.span("s", metadata=metadata, tags=tags) as s:
        s.update(metadata={"b": 2}, tags=["y"])
    assert metadata == {"a": 1}
    assert tags == ["x"]


def test_update_current_span_updates_the_innermost_span(tracekit_capture: Capture) -> None:
    """update_current_span() changes the active span and leaves its parent alone."""
    with tracekit.span("outer") as outer, tracekit.span("inner") as inner:
        tracekit.update_current_span(output="done", metadata={"k": "v"})
    assert inner.output == "done"
    assert inner.metadata == {"k": "v"}
    assert outer.output is None


def test_update_current_span_without_a_span_logs_once_and_does_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no active span, update_current_span() is a logged no-op, logged only once."""
    tracekit.update_current_span(output=1)
    tracekit.update_current_span(output=2)
    messages = [r.getMessage() for r in caplog.records if r.name == "tracekit"]
    assert len(messages) == 1
    assert "no active span" in messages[0]


def test_update_current_trace_applies_to_the_trace_from_any_depth(
    tracekit_capture: Capture,
) -> None:
    """update_current_trace() from a nested span sets the trace's fields, not the span's."""
    with tracekit.span("root", input={"q": 1}), tracekit.span("child") as child:
        tracekit.update_current_trace(
            name="renamed trace",
            output={"a": 2},
            metadata={"m": 1},
            tags=["t"],
            thread_id="conversation-7",
        )
    (trace,) = tracekit_capture.traces
    assert trace.name == "renamed trace"
    assert trace.input == {"q": 1}
    assert trace.output == {"a": 2}
    assert trace.metadata == {"m": 1}
    assert trace.tags == ["t"]
    assert trace.thread_id == "conversation-7"
    assert trace.id == child.trace_id
    assert child.output is None


def test_update_current_trace_merges_repeated_updates(tracekit_capture: Capture) -> None:
    """Two update_current_trace() calls merge metadata and extend tags."""
    with tracekit.span("root"):
        tracekit.update_current_trace(metadata={"a": 1}, tags=["x"])
        tracekit.update_current_trace(metadata={"b": 2}, tags=["y"])
    (trace,) = tracekit_capture.traces
    assert trace.metadata == {"a": 1, "b": 2}
    assert trace.tags == ["x", "y"]


def test_a_trace_without_updates_mirrors_its_root(tracekit_capture: Capture) -> None:
    """A trace's name, input, output and times are its root span's."""
    with tracekit.span("root", input={"q": 1}) as root:
        root.update(output="a")
    (trace,) = tracekit_capture.traces
    assert (trace.name, trace.input, trace.output) == ("root", {"q": 1}, "a")
    assert (trace.start_time, trace.end_time) == (root.start_time, root.end_time)


def test_a_span_ends_once(tracekit_capture: Capture) -> None:
    """end() on an ended span does nothing and reports False."""
    span = tracekit.Span("s")
    assert span.end() is True
    first_end = span.end_time
    assert span.end() is False
    assert span.end_time == first_end
    assert tracekit_capture.spans == [span]
