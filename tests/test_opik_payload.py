"""What tracekit sends to Opik means what the opik SDK sends for the same spans and traces.

Both go to the in-suite server: tracekit's exporter, then the opik SDK's own
client (`Opik.span()` / `Opik.trace()`, its message queue, REST models and
HTTP client) given the same records' fields. Every item is compared field by
field as it arrived on the wire.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from opik.api_objects import opik_client

import tracekit
from tests.opik_server import OpikServer
from tracekit._records import SpanRecord, TraceRecord, span_record

# Sent as the SDK sends them, but not the same from two senders: when each logged the item.
_LOGGED_AT = {"last_updated_at"}
_TIMES = {"start_time", "end_time"}


class Wire:
    """Every span and trace item as the server received it, before merging."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def take(self, kind: str, ids: set[str]) -> dict[str, dict[str, Any]]:
        """The items of `kind` ("spans", "traces") with these ids, by id."""
        return {item["id"]: item for k, item in self.items if k == kind and item["id"] in ids}


@pytest.fixture
def wire(opik_server: OpikServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    """The local Opik server, recording each item it receives as it arrived."""
    opik_server.reset()
    seen = Wire()
    merge = opik_server._record

    def record(kind: str, items: list[dict[str, Any]]) -> None:
        seen.items.extend((kind, copy.deepcopy(item)) for item in items)
        merge(kind, items)

    monkeypatch.setattr(opik_server, "_record", record)
    tracekit.configure(exporter="opik", flush_interval=0.05, request_timeout=5)
    yield seen
    tracekit.configure(exporter="none")


def _wrapped(value: Any, key: str) -> Any:
    """A value as `@opik.track` logs it: dicts as they are, anything else under `key`."""
    return value if value is None or isinstance(value, dict) else {key: value}


def _send_with_the_sdk(spans: list[SpanRecord], traces: list[TraceRecord]) -> None:
    client = opik_client.get_client_cached()
    for trace in traces:
        client.trace(
            id=trace.id,
            project_name=trace.project_name,
            name=trace.name,
            start_time=trace.start_time,
            end_time=trace.end_time,
            input=_wrapped(trace.input, "input"),
            output=_wrapped(trace.output, "output"),
            metadata=trace.metadata,
            tags=trace.tags or None,
            error_info=trace.error_info,  # type: ignore[arg-type]
            thread_id=trace.thread_id,
        )
    for span in spans:
        client.span(
            id=span.id,
            trace_id=span.trace_id,
            parent_span_id=span.parent_id,
            project_name=span.project_name,
            name=span.name,
            type=span.type,  # type: ignore[arg-type]
            start_time=span.start_time,
            end_time=span.end_time,
            input=_wrapped(span.input, "input"),
            output=_wrapped(span.output, "output"),
            metadata=span.metadata,
            tags=span.tags or None,
            usage=span.usage,
            model=span.model,
            provider=span.provider,
            total_cost=span.total_cost,
            error_info=span.error_info,  # type: ignore[arg-type]
        )
    client.flush()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_same_meaning(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert set(ours) == set(theirs), f"fields differ for {ours['id']}"
    for field in sorted(ours):
        if field in _TIMES:
            assert _instant(ours[field]) == _instant(theirs[field]), field
        elif field in _LOGGED_AT:
            _instant(ours[field])  # a timestamp, like the SDK's
        else:
            assert ours[field] == theirs[field], field


@tracekit.track(type="tool", tags=["t"], metadata={"m": 1})
def lookup(query: str) -> list[str]:
    if query == "boom":
        raise KeyError(query)
    return [query.upper()]


@tracekit.track
def agent(question: str) -> str:
    tracekit.update_current_trace(tags=["vip"], metadata={"tenant": "acme"})
    with tracekit.span("plain-usage", type="llm", input={"messages": ["hi"]}) as llm:
        llm.update(
            model="gpt-4o-mini",
            provider="openai",
            usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            total_cost=0.25,
            metadata={"temperature": 0.2},
            output={"role": "assistant", "content": "thinking"},
        )
    with tracekit.span("opik-usage", type="llm", input=["a", "list"]) as llm:
        # Usage the way tracekit's LLM integrations give it: already in Opik's format.
        llm.update(
            model="claude-3-5-haiku",
            provider="anthropic",
            usage={
                "prompt_tokens": 7,
                "completion_tokens": 1,
                "total_tokens": 8,
                "original_usage.input_tokens": 7,
                "original_usage.output_tokens": 1,
            },
            metadata={"max_tokens": 5},
            output="short",
        )
    with tracekit.span("guard", type="guardrail"):
        pass
    with pytest.raises(KeyError):
        lookup("boom")
    return lookup(question)[0]


def test_spans_and_traces_mean_what_the_sdk_sends(wire: Wire) -> None:
    """Each span and trace item equals the opik SDK's for the same record, field by field."""
    with (
        tracekit.testing.capture(export=True) as captured,
        tracekit.context(project_name="payload", thread_id="conv-7", tags=["prod"]),
    ):
        assert agent("hi") == "HI"
    assert tracekit.flush(10)
    spans = [span_record(span) for span in captured.spans]
    traces = captured.traces
    span_ids, trace_ids = {s.id for s in spans}, {t.id for t in traces}
    ours_spans, ours_traces = wire.take("spans", span_ids), wire.take("traces", trace_ids)
    assert len(ours_spans) == 6
    assert len(ours_traces) == 1

    wire.items.clear()
    _send_with_the_sdk(spans, traces)
    theirs_spans, theirs_traces = wire.take("spans", span_ids), wire.take("traces", trace_ids)

    assert set(theirs_spans) == span_ids
    assert set(theirs_traces) == trace_ids
    for span_id in span_ids:
        _assert_same_meaning(ours_spans[span_id], theirs_spans[span_id])
    for trace_id in trace_ids:
        _assert_same_meaning(ours_traces[trace_id], theirs_traces[trace_id])
    # The cases above are all there: a failing span, both kinds of usage, wrapped values.
    failed = next(s for s in ours_spans.values() if "error_info" in s)
    assert failed["error_info"]["exception_type"] == "KeyError"
    plain = next(s for s in ours_spans.values() if s["name"] == "plain-usage")
    assert plain["usage"]["original_usage.prompt_tokens"] == 3
    assert plain["metadata"]["usage"]["prompt_tokens"] == 3
    listed = next(s for s in ours_spans.values() if s["name"] == "opik-usage")
    assert listed["input"] == {"input": ["a", "list"]}
    assert listed["output"] == {"output": "short"}
    (trace,) = ours_traces.values()
    assert (trace["thread_id"], trace["tags"]) == ("conv-7", ["prod", "vip"])


def test_an_int_orjson_refuses_still_arrives(opik_server: OpikServer, wire: Wire) -> None:
    """An int beyond 64 bits is sent as the SDK's client encodes it (stdlib json)."""
    with tracekit.span("odd", input={"big": 2**70, "small": 1}) as span:
        pass
    assert tracekit.flush(10)
    assert opik_server.spans[span.id]["input"] == {"big": 2**70, "small": 1}
