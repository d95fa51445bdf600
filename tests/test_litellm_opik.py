"""With LiteLLM's own Opik callback on, and with `@opik.track`: checked on the wire.

The real opik SDK and LiteLLM's real OpikLogger talk HTTP to the in-suite
Opik-compatible server; tracekit exports there too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import opik
import pytest

import tracekit
from tests.opik_server import OpikServer

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "gpt-4o-mini"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(opik_server: OpikServer) -> Iterator[OpikServer]:
    """tracekit exports to the server, LiteLLM is instrumented; all undone afterwards."""
    opik_server.reset()
    litellm.logging_callback_manager._reset_all_callbacks()
    tracekit.configure(exporter="opik", flush_interval=0.05)
    tracekit.instrument_litellm()
    yield opik_server
    tracekit.uninstrument_litellm()
    litellm.logging_callback_manager._reset_all_callbacks()
    tracekit.configure(exporter="none")


def _flushed(server: OpikServer, condition: Any) -> None:
    assert tracekit.flush(15)
    assert server.wait_for(condition, timeout=15), (server.traces, server.spans)


def _llm_spans(server: OpikServer) -> list[dict[str, Any]]:
    return [s for s in server.spans.values() if s.get("type") == "llm"]


@tracekit.track
def agent(answer: str) -> str:
    response = litellm.completion(model=MODEL, messages=MESSAGES, mock_response=answer)
    return str(response.choices[0].message.content)


def test_opik_callback_logs_the_success_under_the_tracekit_span(server: OpikServer) -> None:
    """LiteLLM's OpikLogger logs the call, as the tracekit span's child; tracekit adds none."""
    litellm.callbacks = ["opik"]
    assert agent("fine") == "fine"
    _flushed(server, lambda: len(_llm_spans(server)) == 1 and len(server.traces) == 1)
    (trace,) = server.traces.values()
    (root,) = [s for s in server.spans.values() if s["name"] == "agent"]
    (llm,) = _llm_spans(server)
    assert llm["trace_id"] == trace["id"] == root["trace_id"]
    assert llm["parent_span_id"] == root["id"]
    assert llm["name"] != "litellm.completion"  # written by OpikLogger, not tracekit


def test_the_llm_span_lands_in_the_traces_project(server: OpikServer) -> None:
    """project_name from tracekit.context() reaches OpikLogger's span; thread_id the trace."""
    litellm.callbacks = ["opik"]
    with tracekit.context(project_name="support", thread_id="conv-9"):
        agent("x")
    _flushed(server, lambda: len(_llm_spans(server)) == 1 and len(server.traces) == 1)
    (trace,) = server.traces.values()
    (llm,) = _llm_spans(server)
    assert trace["project_name"] == llm["project_name"] == "support"
    assert trace["thread_id"] == "conv-9"


def test_without_the_callback_tracekit_logs_exactly_one_llm_span(server: OpikServer) -> None:
    """With no Opik callback, tracekit's own LLM span reaches the server, once."""
    agent("solo")
    _flushed(server, lambda: len(_llm_spans(server)) == 1)
    (llm,) = _llm_spans(server)
    (root,) = [s for s in server.spans.values() if s["name"] == "agent"]
    assert llm["name"] == "litellm.completion"
    assert llm["parent_span_id"] == root["id"]
    assert llm["model"] == MODEL
    assert llm["usage"]["total_tokens"] == 30


def test_failures_are_logged_by_tracekit_with_the_callback_on(server: OpikServer) -> None:
    """OpikLogger never logs failures: tracekit logs one LLM span with error_info."""
    litellm.callbacks = ["opik"]
    with pytest.raises(litellm.InternalServerError):
        agent_failing()
    _flushed(server, lambda: len(_llm_spans(server)) == 1)
    (llm,) = _llm_spans(server)
    assert llm["error_info"]["exception_type"] == "InternalServerError"
    assert "provider down" in llm["error_info"]["message"]


@tracekit.track
def agent_failing() -> None:
    litellm.completion(model=MODEL, messages=MESSAGES, mock_response=Exception("provider down"))


def test_an_abandoned_stream_is_logged_with_the_callback_on(server: OpikServer) -> None:
    """OpikLogger never logs a stream closed early; tracekit does, marked not completed."""
    litellm.callbacks = ["opik"]

    async def main() -> None:
        with tracekit.span("chat"):
            stream = await litellm.acompletion(
                model=MODEL, messages=MESSAGES, mock_response="a b c d e", stream=True
            )
            async for _ in stream:
                break
            await stream.aclose()

    asyncio.run(main())
    _flushed(server, lambda: len(_llm_spans(server)) == 1)
    (llm,) = _llm_spans(server)
    assert llm["metadata"]["stream_completed"] is False


def test_a_finished_stream_is_logged_once_by_the_callback(server: OpikServer) -> None:
    """A stream read to the end is logged by OpikLogger alone, under the caller's span."""
    litellm.callbacks = ["opik"]
    with tracekit.span("chat") as chat:
        stream = litellm.completion(
            model=MODEL, messages=MESSAGES, mock_response="x y", stream=True
        )
    list(stream)
    _flushed(server, lambda: len(_llm_spans(server)) == 1)
    (llm,) = _llm_spans(server)
    assert llm["parent_span_id"] == chat.id


# -- @opik.track ----------------------------------------------------------------------


def test_litellm_under_opik_track_alone_is_attached(server: OpikServer) -> None:
    """A LiteLLM call inside @opik.track (no tracekit span) nests under the opik span."""

    @opik.track(name="opik_agent")
    def opik_agent() -> None:
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response="o")

    opik_agent()
    opik.flush_tracker()
    _flushed(server, lambda: len(_llm_spans(server)) == 1 and len(server.traces) == 1)
    (opik_span,) = [s for s in server.spans.values() if s["name"] == "opik_agent"]
    (llm,) = _llm_spans(server)
    assert llm["parent_span_id"] == opik_span["id"]
    assert llm["trace_id"] == opik_span["trace_id"]


def test_opik_track_nests_inside_tracekit_track(server: OpikServer) -> None:
    """An @opik.track function called from a tracekit span is its child, in its trace."""

    @opik.track(name="inner_opik")
    def inner() -> str:
        return "i"

    @tracekit.track
    def outer() -> str:
        return inner()

    outer()
    opik.flush_tracker()
    _flushed(server, lambda: len(server.spans) == 2)
    (trace,) = server.traces.values()
    spans = {s["name"]: s for s in server.spans.values()}
    assert spans["inner_opik"]["parent_span_id"] == spans["outer"]["id"]
    assert spans["inner_opik"]["trace_id"] == spans["outer"]["trace_id"] == trace["id"]


def test_tracekit_track_nests_inside_opik_track(server: OpikServer) -> None:
    """A tracekit span opened inside @opik.track is the opik span's child, in opik's trace."""

    @tracekit.track
    def inner() -> str:
        tracekit.update_current_trace(tags=["ignored: the trace is opik's"])
        return "t"

    @opik.track(name="outer_opik")
    def outer() -> str:
        return inner()

    outer()
    opik.flush_tracker()
    _flushed(server, lambda: len(server.spans) == 2 and len(server.traces) == 1)
    (trace,) = server.traces.values()
    spans = {s["name"]: s for s in server.spans.values()}
    assert spans["inner"]["parent_span_id"] == spans["outer_opik"]["id"]
    assert spans["inner"]["trace_id"] == trace["id"]


REQUESTS_THEN_EXIT = """
import asyncio, sys, litellm, tracekit
tracekit.configure(exporter="opik")
tracekit.instrument_litellm()
if sys.argv[1] == "callback":
    litellm.callbacks = ["opik"]

@tracekit.track
async def handle(n):
    await litellm.acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                              mock_response=f"answer {n}")
    stream = await litellm.acompletion(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}],
                                       mock_response="s t r", stream=True)
    async for _ in stream:
        pass

for n in range(4):
    asyncio.run(handle(n))
"""


@pytest.mark.parametrize("setup", ["callback", "tracekit"])
def test_asyncio_run_per_request_then_exit_loses_no_llm_span(
    opik_server: OpikServer, setup: str
) -> None:
    """A script doing asyncio.run() per request and exiting at once: every LLM span arrives."""
    opik_server.reset()
    env = {**os.environ, "OPIK_URL_OVERRIDE": opik_server.url}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(REQUESTS_THEN_EXIT), setup],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert opik_server.wait_for(lambda: len(_llm_spans(opik_server)) == 8, timeout=20), (
        len(_llm_spans(opik_server)),
        result.stderr[-2000:],
    )
    handlers = {s["id"] for s in opik_server.spans.values() if s["name"] == "handle"}
    assert len(handlers) == 4
    assert {s["parent_span_id"] for s in _llm_spans(opik_server)} == handlers


@tracekit.track
async def ask_async(answer: str) -> str:
    response = await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response=answer)
    return str(response.choices[0].message.content)


@tracekit.track
async def fan_out() -> list[str]:
    return list(await asyncio.gather(ask_async("one"), ask_async("two")))


def test_callback_successes_cut_off_by_asyncio_run_arrive_without_a_flush_and_once(
    server: OpikServer,
) -> None:
    """asyncio.run closed the loop on the callback's tasks: both spans arrive, no flush, once.

    Whoever logs them (the callback if it got to run before the loop closed,
    otherwise tracekit as soon as it closed), they end within their parent;
    and when the callback's kept tasks revive on the next event loop, it
    skips what tracekit logged.
    """
    litellm.callbacks = ["opik"]
    assert asyncio.run(fan_out()) == ["one", "two"]

    def both_arrived() -> bool:
        parents = [s for s in server.spans.values() if s["name"] == "fan_out"]
        return len(parents) == 1 and len(_llm_spans(server)) == 2

    assert server.wait_for(both_arrived, timeout=15), server.spans  # no flush asked for
    (parent,) = [s for s in server.spans.values() if s["name"] == "fan_out"]
    for llm in _llm_spans(server):
        assert parent["start_time"] <= llm["start_time"] <= llm["end_time"] <= parent["end_time"]
    asyncio.run(asyncio.sleep(0.05))  # a new loop: LiteLLM's worker runs what it kept
    assert tracekit.flush(15)
    opik.flush_tracker()
    assert len(_llm_spans(server)) == 2
    assert {s["parent_span_id"] for s in _llm_spans(server)} == {
        s["id"] for s in server.spans.values() if s["name"] == "ask_async"
    }


def test_flush_inside_the_loop_logs_what_its_callback_tasks_hold(server: OpikServer) -> None:
    """flush() called in the very loop the callback's tasks wait on: no wait, nothing lost.

    When it returns True, both LLM spans are on the server: logged by the
    callback if it ran before (older LiteLLM runs it before the result is
    returned), by tracekit otherwise.
    """
    litellm.callbacks = ["opik"]

    async def main() -> tuple[bool, int]:
        await fan_out()
        delivered = tracekit.flush(5)
        return delivered, len(_llm_spans(server))  # before the loop runs anything else

    assert asyncio.run(main()) == (True, 2)
    assert tracekit.flush(5)
    opik.flush_tracker()
    assert len(_llm_spans(server)) == 2
