"""Calls through a real LiteLLM proxy join the caller's trace: one LLM span per call.

The proxy (tests/litellm_proxy.py) logs its LLM span with its own Opik
callback to the in-suite server; tracekit sends the caller's span in
`extra_body.metadata.opik` and logs the client side as a `general` span.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import opik
import pytest

import tracekit
from tests.litellm_proxy import ANSWER, MODEL, LiteLLMProxy, answer_in_a_trace
from tests.opik_server import OpikServer

pytestmark = pytest.mark.usefixtures("litellm_instrumented")

MESSAGES = [{"role": "user", "content": "hi"}]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def server(opik_server: OpikServer, litellm_proxy: LiteLLMProxy) -> Iterator[OpikServer]:
    opik_server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05)
    yield opik_server
    tracekit.configure(exporter="none")


def _call(proxy: LiteLLMProxy, **kwargs: Any) -> Any:
    return litellm.completion(
        model=f"litellm_proxy/{MODEL}",
        api_base=proxy.url,
        api_key=proxy.api_key,
        messages=MESSAGES,
        **kwargs,
    )


def _run(mode: str, proxy: LiteLLMProxy) -> str:
    """One call through the proxy, made `mode`'s way; the answer's text."""
    common: dict[str, Any] = {"api_base": proxy.url, "api_key": proxy.api_key}
    chat = {"model": f"litellm_proxy/{MODEL}", "messages": MESSAGES, **common}
    if mode == "sync":
        return str(litellm.completion(**chat).choices[0].message.content)
    if mode == "stream":
        chunks = litellm.completion(**chat, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks)
    if mode == "async":
        reply = asyncio.run(litellm.acompletion(**chat))
        return str(reply.choices[0].message.content)
    if mode == "async-stream":

        async def consume() -> str:
            chunks = await litellm.acompletion(**chat, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in chunks])

        return asyncio.run(consume())
    if mode == "embedding":
        reply = litellm.embedding(model="litellm_proxy/mock-embedding", input=["hi"], **common)
        return ANSWER if reply.data else ""
    raise ValueError(mode)


def _llm_spans(server: OpikServer) -> list[dict[str, Any]]:
    return [s for s in server.spans.values() if s.get("type") == "llm"]


@pytest.mark.parametrize("mode", ["sync", "stream", "async", "async-stream", "embedding"])
def test_a_proxied_call_nests_the_proxys_llm_span_under_the_caller(
    server: OpikServer, litellm_proxy: LiteLLMProxy, mode: str
) -> None:
    """One `llm` span per call — the proxy's — in the caller's trace, project and tags."""

    answer, trace_id = answer_in_a_trace(
        lambda: _run(mode, litellm_proxy),
        project_name="proxy-project",
        thread_id="th-1",
        tags=["ctx"],
    )
    assert answer == ANSWER
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans_of(trace_id)) == 3, timeout=30)
    by_name = {s["name"]: s for s in server.spans_of(trace_id)}
    kind = "embedding" if mode == "embedding" else "completion"
    client = by_name[f"litellm_proxy.{kind}"]
    (llm,) = [s for s in server.spans_of(trace_id) if s["type"] == "llm"]
    assert client["type"] == "general"
    assert client["parent_span_id"] == by_name["answer"]["id"]
    assert llm["parent_span_id"] == client["id"]
    assert llm["trace_id"] == by_name["answer"]["trace_id"]
    assert llm["project_name"] == "proxy-project"
    assert "ctx" in llm.get("tags", [])
    assert trace_id in server.traces
    assert "usage" not in client  # tokens and cost are the proxy's span's
    assert "total_estimated_cost" not in client


def test_the_callers_extra_body_wins_and_is_not_changed(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    extra_body = {"metadata": {"opik": {"tags": ["mine"]}, "team": "search"}}
    given = copy.deepcopy(extra_body)
    with tracekit.span("caller") as caller:
        _call(litellm_proxy, extra_body=extra_body)
    assert extra_body == given
    assert tracekit.flush(10)

    def ours() -> list[dict[str, Any]]:
        return [s for s in server.spans_of(caller.trace_id) if s["type"] == "llm"]

    assert server.wait_for(lambda: len(ours()) == 1, timeout=30)
    (llm,) = ours()
    assert (
        "mine" in llm["tags"]
    )  # the caller's tags, not the context's (the proxy adds its provider)
    client = next(s for s in server.spans.values() if s["name"] == "litellm_proxy.completion")
    assert llm["parent_span_id"] == client["id"]


def test_with_no_active_span_nothing_is_added(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    _call(litellm_proxy)
    assert tracekit_capture.spans == []

    def in_own_trace() -> list[dict[str, Any]]:  # the proxy's own trace, its record sent
        return [s for s in _llm_spans(server) if s["trace_id"] in server.traces]

    assert server.wait_for(lambda: len(in_own_trace()) == 1, timeout=30)


def test_the_proxy_client_example_logs_one_llm_span_per_call(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    """examples/proxy_client.py against the suite's proxy: two calls, two nested LLM spans."""
    env = {
        **os.environ,
        "PROXY_URL": litellm_proxy.url,
        "PROXY_KEY": litellm_proxy.api_key,
        "TRACEKIT_EXPORTER": "opik",
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "proxy_client.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [ANSWER, ANSWER, "exported: True"]

    def ours() -> list[dict[str, Any]]:
        return [s for s in _llm_spans(server) if s.get("project_name") == "proxy-example"]

    assert server.wait_for(lambda: len(ours()) == 2, timeout=30)
    clients = {s["id"] for s in server.spans.values() if s["name"].startswith("litellm_proxy.")}
    assert {s["parent_span_id"] for s in ours()} <= clients


def test_a_caller_project_other_than_the_traces_is_kept_and_nothing_is_joined(
    server: OpikServer, litellm_proxy: LiteLLMProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Joined, the proxy's span would sit in another project than its trace: an orphan."""
    extra_body = {"metadata": {"opik": {"project_name": "elsewhere"}}}
    with (
        caplog.at_level(logging.WARNING, "tracekit"),
        tracekit.context(project_name="mine"),
        tracekit.span("caller") as caller,
    ):
        _call(litellm_proxy, extra_body=extra_body)

    def ours() -> list[dict[str, Any]]:
        return [s for s in _llm_spans(server) if s.get("project_name") == "elsewhere"]

    assert server.wait_for(lambda: len(ours()) == 1, timeout=30)
    (llm,) = ours()
    assert llm["project_name"] == "elsewhere"
    assert llm["trace_id"] != caller.trace_id
    assert any("'elsewhere' is not the trace's" in r.getMessage() for r in caplog.records)


def test_exporting_elsewhere_a_proxied_call_is_recorded_as_an_llm_span(
    opik_server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any, tmp_path: Any
) -> None:
    """The proxy cannot nest under a trace Opik never gets: tracekit keeps the LLM span itself."""
    opik_server.reset()
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "t.db", flush_interval=0.01)
    try:
        extra_body: dict[str, Any] = {}
        with tracekit.span("caller") as caller:
            _call(litellm_proxy, extra_body=extra_body)
        (llm,) = [s for s in tracekit_capture.spans if s.type == "llm"]
        assert llm.parent_id == caller.id
        assert llm.usage is not None
        assert llm.usage["total_tokens"] > 0
        assert extra_body == {}
    finally:
        tracekit.configure(exporter="none")
    # The proxy logs the call in a trace of its own: let it arrive in this test.
    assert opik_server.wait_for(lambda: len(_llm_spans(opik_server)) == 1, timeout=30)


def test_a_proxied_call_under_opik_track_alone_nests_under_its_span(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    @opik.track(name="opik-caller")
    def caller() -> None:
        _call(litellm_proxy)

    caller()
    opik.flush_tracker()
    assert tracekit.flush(10)
    (theirs,) = [s for s in server.spans.values() if s["name"] == "opik-caller"]
    assert server.wait_for(lambda: len(server.spans_of(theirs["trace_id"])) == 3, timeout=30)
    by_type = {s["type"]: s for s in server.spans_of(theirs["trace_id"]) if s is not theirs}
    assert by_type["general"]["parent_span_id"] == theirs["id"]
    assert by_type["llm"]["parent_span_id"] == by_type["general"]["id"]
