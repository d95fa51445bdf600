"""Spans reach Opik through the real opik SDK client, checked on the wire."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tracekit
from tests.opik_server import OpikServer


@pytest.fixture
def opik(opik_server: OpikServer) -> Iterator[OpikServer]:
    """Export to the local Opik server for one test, then back to no exporter."""
    opik_server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05, request_timeout=1)
    yield opik_server
    opik_server.release()
    tracekit.configure(exporter="none")


@tracekit.track(type="tool", tags=["t"], metadata={"m": 1})
def tool(query: str) -> dict[str, str]:
    return {"result": query.upper()}


@tracekit.track
def agent(question: str) -> str:
    with tracekit.span("llm-call", type="llm") as llm:
        llm.update(
            model="gpt-4o-mini",
            provider="openai",
            usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            total_cost=0.25,
            output="thinking",
        )
    return tool(question)["result"]


def test_a_trace_arrives_with_its_spans_linked(opik: OpikServer) -> None:
    """The root becomes a trace plus a root span; children carry trace_id and parent_span_id."""
    assert agent("hi") == "HI"
    assert tracekit.flush(10)
    traces = list(opik.traces.values())
    assert len(traces) == 1
    trace = traces[0]
    spans = {s["name"]: s for s in opik.spans_of(trace["id"])}
    assert set(spans) == {"agent", "llm-call", "tool"}
    root = spans["agent"]
    assert root.get("parent_span_id") is None
    assert spans["llm-call"]["parent_span_id"] == root["id"]
    assert spans["tool"]["parent_span_id"] == root["id"]
    assert trace["name"] == "agent"
    assert trace["input"] == {"question": "hi"}
    assert trace["output"] == {"output": "HI"}
    assert root["id"] != trace["id"]
    assert {s["project_name"] for s in spans.values()} == {"tracekit-tests"}
    assert trace["project_name"] == "tracekit-tests"


def test_span_fields_map_to_opik_fields(opik: OpikServer) -> None:
    """type, model, provider, usage, cost, tags, metadata and times reach Opik's span fields."""
    agent("x")
    assert tracekit.flush(10)
    (llm,) = [s for s in opik.spans.values() if s["name"] == "llm-call"]
    assert llm["type"] == "llm"
    assert (llm["model"], llm["provider"]) == ("gpt-4o-mini", "openai")
    # Parsed as the opik SDK parses it: the counts, and the provider's own under original_usage.
    assert llm["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "original_usage.prompt_tokens": 3,
        "original_usage.completion_tokens": 2,
        "original_usage.total_tokens": 5,
    }
    assert llm["total_estimated_cost"] == 0.25
    assert llm["output"] == {"output": "thinking"}
    (tool_span,) = [s for s in opik.spans.values() if s["name"] == "tool"]
    assert tool_span["type"] == "tool"
    assert tool_span["tags"] == ["t"]
    assert tool_span["metadata"] == {"m": 1}
    assert tool_span["input"] == {"query": "x"}
    assert tool_span["start_time"] <= tool_span["end_time"]


def test_project_thread_and_tags_from_context_reach_the_trace(opik: OpikServer) -> None:
    """context(project_name, thread_id, tags) and update_current_trace land on the trace."""
    with (
        tracekit.context(project_name="support", thread_id="conv-1", tags=["prod"]),
        tracekit.span("handle"),
    ):
        tracekit.update_current_trace(tags=["vip"], metadata={"tenant": "acme"})
        tool("q")
    assert tracekit.flush(10)
    (trace,) = opik.traces.values()
    assert trace["project_name"] == "support"
    assert trace["thread_id"] == "conv-1"
    assert trace["tags"] == ["prod", "vip"]
    assert trace["metadata"] == {"tenant": "acme"}
    assert {s["project_name"] for s in opik.spans.values()} == {"support"}


def test_configured_project_is_the_default(opik_server: OpikServer) -> None:
    """configure(project_name=...) names the project of traces that set none."""
    opik_server.reset()
    tracekit.configure(exporter="opik", project_name="configured", flush_interval=0.05)
    try:
        tool("a")
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    (trace,) = opik_server.traces.values()
    assert trace["project_name"] == "configured"
    assert {s["project_name"] for s in opik_server.spans.values()} == {"configured"}


def test_errors_arrive_as_error_info(opik: OpikServer) -> None:
    """A failing call's span and trace carry Opik's error_info."""

    @tracekit.track
    def fails() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        fails()
    assert tracekit.flush(10)
    (trace,) = opik.traces.values()
    (span,) = opik.spans.values()
    for record in (trace, span):
        assert record["error_info"]["exception_type"] == "ValueError"
        assert record["error_info"]["message"] == "nope"
        assert "raise ValueError" in record["error_info"]["traceback"]


def test_secrets_never_reach_the_server(opik: OpikServer) -> None:
    """Arguments and metadata under secret-looking keys arrive redacted."""

    @tracekit.track
    def call(prompt: str, api_key: str, options: dict[str, str]) -> str:
        return prompt

    call("hi", "sk-live-123", {"Authorization": "Bearer abc", "max_tokens": "5"})
    assert tracekit.flush(10)
    (span,) = opik.spans.values()
    assert span["input"] == {
        "prompt": "hi",
        "api_key": "REDACTED",
        "options": {"Authorization": "REDACTED", "max_tokens": "5"},
    }
    assert "sk-live-123" not in repr(opik.spans) + repr(opik.traces)


def test_a_server_answering_500_loses_spans_visibly_not_the_program(
    opik: OpikServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With every write refused, results are unchanged, flush() is False and stats() counts."""
    opik.mode = "error"
    results = [agent(str(i)) for i in range(3)]
    assert results == ["0", "1", "2"]
    assert tracekit.flush(60) is False  # opik's client retries each request for ~11 s
    counts = tracekit.stats()
    assert counts["failed"] == 9
    assert counts["exported"] == 0
    losses = [r for r in caplog.records if "could not export" in r.getMessage()]
    assert len(losses) == 1


def test_a_server_that_never_answers_does_not_block_the_program(opik: OpikServer) -> None:
    """Calls return while the server holds every request; the loss shows in stats()."""
    opik.mode = "hang"
    assert agent("a") == "A"
    assert opik.wait_for(lambda: any(m == "POST" for m, _ in opik.requests))
    assert agent("b") == "B"  # returned while the export thread is stuck on the server
    assert tracekit.flush(0.2) is False
    opik.release()
    assert tracekit.flush(60) is False
    counts = tracekit.stats()
    assert counts["failed"] + counts["dropped"] == 6
    assert counts["exported"] == 0


def test_a_batchs_spans_are_sent_before_its_traces(opik: OpikServer) -> None:
    """If the server stops half way, Opik never shows a trace without its spans."""
    agent("x")
    assert tracekit.flush(10)
    writes = [path for method, path in opik.requests if method == "POST"]
    assert writes == ["api/v1/private/spans/batch", "api/v1/private/traces/batch"]


def test_a_hanging_spans_request_sends_no_trace(opik: OpikServer) -> None:
    """While the spans request hangs, the trace record is not sent ahead of it."""
    opik.mode = "hang"
    agent("x")
    assert opik.wait_for(lambda: any(m == "POST" for m, _ in opik.requests))
    assert tracekit.flush(0.5) is False
    writes = {path for method, path in opik.requests if method == "POST"}
    assert writes == {"api/v1/private/spans/batch"}  # retried, perhaps; never the trace
