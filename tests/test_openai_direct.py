"""The openai SDK pointed at anything but a listed LiteLLM proxy: tracekit's own LLM span.

The fake OpenAI server is the suite's real LiteLLM proxy, *not* listed as a
proxy: to tracekit it is any OpenAI-compatible server (vLLM, a gateway). The
proxy's own Opik callback still logs each call, in a trace of its own: that
it is not nested under ours shows that nothing was added to the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import openai
import opik
import pytest

import tracekit
from tests.litellm_proxy import ANSWER, MASTER_KEY, MODEL, PRICED_MODEL, LiteLLMProxy
from tests.opik_server import OpikServer

MESSAGES = [{"role": "user", "content": "hi"}]
NOT_A_PROXY_KEY = "tk-client-credential-5a4b3c2d1e"


@pytest.fixture
def server(opik_server: OpikServer, litellm_proxy: LiteLLMProxy) -> Iterator[OpikServer]:
    opik_server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05, litellm_proxies=[])
    tracekit.instrument_openai()
    yield opik_server
    tracekit.uninstrument_openai()
    tracekit.configure(exporter="none")


def _client(proxy: LiteLLMProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url, api_key=proxy.api_key)


def _proxys_own_spans(server: OpikServer, trace_id: str) -> list[dict[str, Any]]:
    """The LLM spans the proxy logged in traces of its own (not ours)."""
    return [
        s for s in server.spans.values() if s.get("type") == "llm" and s["trace_id"] != trace_id
    ]


def _expected_cost(usage: dict[str, int]) -> float:
    price = litellm.model_cost[PRICED_MODEL]
    return float(
        usage["prompt_tokens"] * price["input_cost_per_token"]
        + usage["completion_tokens"] * price["output_cost_per_token"]
    )


def _call(mode: str, proxy: LiteLLMProxy) -> str:
    if mode.startswith("async"):
        return asyncio.run(_call_async(mode, proxy))
    with _client(proxy) as client:
        if mode == "sync":
            reply = client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            return str(reply.choices[0].message.content)
        if mode == "parse":
            parsed = client.chat.completions.parse(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            return str(parsed.choices[0].message.content)
        if mode == "raw":
            raw = client.chat.completions.with_raw_response.create(
                model=PRICED_MODEL,
                messages=MESSAGES,  # type: ignore[arg-type]
            )
            return str(raw.parse().choices[0].message.content)
        if mode == "stream":
            chunks = client.chat.completions.create(
                model=PRICED_MODEL,
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        if mode == "responses":
            return client.responses.create(model=PRICED_MODEL, input="hi").output_text
        raise ValueError(mode)


async def _call_async(mode: str, proxy: LiteLLMProxy) -> str:
    async with openai.AsyncOpenAI(base_url=proxy.url, api_key=proxy.api_key) as client:
        if mode == "async":
            reply = await client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            return str(reply.choices[0].message.content)
        chunks = await client.chat.completions.create(
            model=PRICED_MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


@pytest.mark.parametrize(
    "mode", ["sync", "parse", "raw", "stream", "async", "async-stream", "responses"]
)
def test_a_call_elsewhere_is_one_llm_span_of_ours_with_tokens_and_cost(
    server: OpikServer, litellm_proxy: LiteLLMProxy, mode: str
) -> None:
    @tracekit.track(project_name="openai-direct", tags=["ctx"])
    def answer() -> str:
        return _call(mode, litellm_proxy)

    assert answer() == ANSWER
    assert tracekit.flush(10)
    (root,) = [s for s in server.spans.values() if s["name"] == "answer"]
    trace_id = root["trace_id"]
    assert server.wait_for(lambda: len(server.spans_of(trace_id)) == 2)
    (llm,) = [s for s in server.spans_of(trace_id) if s["type"] == "llm"]
    assert llm["parent_span_id"] == root["id"]
    assert llm["project_name"] == "openai-direct"
    assert llm["name"] == ("openai.responses" if mode == "responses" else "openai.chat.completions")
    assert llm["model"] == PRICED_MODEL
    assert llm["provider"] == "127.0.0.1"  # as Opik's integration names a non-OpenAI host
    assert llm["tags"] == ["openai"]
    assert llm["usage"]["prompt_tokens"] > 0
    assert llm["usage"]["completion_tokens"] > 0
    assert llm["total_estimated_cost"] == pytest.approx(_expected_cost(llm["usage"]))
    if mode == "responses":
        assert llm["input"] == {"input": "hi"}
        assert llm["output"] == {"output": ANSWER}
    else:
        assert llm["input"] == {"messages": MESSAGES}
        assert llm["output"] == {"role": "assistant", "content": ANSWER}
    # Nothing was added to the request: the proxy logged the call in a trace of its own.
    assert server.wait_for(lambda: len(_proxys_own_spans(server, trace_id)) == 1, timeout=30)


def test_an_embedding_records_its_size_and_tokens(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    with tracekit.span("caller") as caller, _client(litellm_proxy) as client:
        client.embeddings.create(model="mock-embedding", input=["hi"], dimensions=3)
    span = tracekit_capture.named("openai.embeddings")
    assert span.type == "llm"
    assert span.parent_id == caller.id
    assert span.output == {"items": 1}
    assert span.input == {"input": ["hi"]}
    assert span.metadata == {"model_parameters": {"dimensions": 3}}
    assert span.usage["prompt_tokens"] > 0
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)


def test_a_stream_without_usage_records_its_text_and_no_tokens(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    with tracekit.span("caller") as caller, _client(litellm_proxy) as client:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    span = tracekit_capture.named("openai.chat.completions")
    assert text == ANSWER
    assert span.output == {"role": "assistant", "content": ANSWER}
    assert span.usage is None
    assert span.total_cost is None
    assert span.metadata == {"model_parameters": {"stream": True}}
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)


def test_a_stream_dropped_after_one_chunk_ends_at_that_chunk_as_not_completed(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    with tracekit.span("caller") as caller, _client(litellm_proxy) as client:
        stream = client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        first = next(iter(stream))
        got_first = time.time_ns()
        del stream, first
        gc.collect()
    span = tracekit_capture.named("openai.chat.completions")
    assert span.metadata["stream_completed"] is False
    assert span.error_info is None
    assert span._end_ns is not None
    assert span._end_ns <= got_first
    assert span.output["content"] in ANSWER
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)


def test_a_tracked_function_returning_a_stream_ends_with_it(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    client = _client(litellm_proxy)

    @tracekit.track
    def ask() -> Any:
        return client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]

    stream = ask()
    assert tracekit_capture.spans == []  # open while the stream is read
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.close()
    ask_span = tracekit_capture.named("ask")
    llm = tracekit_capture.named("openai.chat.completions")
    assert ask_span.output == text == ANSWER
    assert llm.parent_id == ask_span.id
    assert ask_span._end_ns >= llm._end_ns
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, ask_span.trace_id)) == 1, 30)


@pytest.mark.parametrize("is_async", [False, True])
def test_a_failed_call_is_an_llm_span_with_the_error_and_the_error_is_the_callers(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any, is_async: bool
) -> None:
    async def call_async() -> None:
        async with openai.AsyncOpenAI(base_url=litellm_proxy.url, api_key=MASTER_KEY) as client:
            await client.chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]

    def call() -> None:
        with _client(litellm_proxy) as client:
            client.chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]

    with tracekit.span("caller"), pytest.raises(openai.BadRequestError):
        asyncio.run(call_async()) if is_async else call()
    span = tracekit_capture.named("openai.chat.completions")
    assert span.type == "llm"
    assert span.error_info is not None
    assert span.error_info["exception_type"] == "BadRequestError"
    assert span.model == "no-such-model"


def test_a_response_changed_by_the_caller_is_recorded_as_it_came(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    with tracekit.span("caller") as caller, _client(litellm_proxy) as client:
        reply = client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        reply.choices[0].message.content = "changed"
        reply.usage = None
    span = tracekit_capture.named("openai.chat.completions")
    assert span.output["content"] == ANSWER
    assert span.usage["prompt_tokens"] > 0
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)


def test_no_active_span_is_a_trace_of_its_own_and_adds_nothing(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    """As a LiteLLM call (and Opik's own integration): logged, as the root of its trace."""
    with _client(litellm_proxy) as client:
        client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert tracekit.flush(10)
    (ours,) = [s for s in server.spans.values() if s.get("tags") == ["openai"]]
    assert ours["type"] == "llm"
    assert ours.get("parent_span_id") is None
    assert server.traces[ours["trace_id"]]["name"] == "openai.chat.completions"
    assert server.wait_for(lambda: len(_proxys_own_spans(server, ours["trace_id"])) == 1, 30)


@pytest.mark.parametrize("how", ["static", "provider", "rotated"])
def test_the_clients_api_key_never_reaches_the_store(
    litellm_proxy: LiteLLMProxy, tmp_path: Path, how: str
) -> None:
    """The key is found on the client (no argument carries it) and scrubbed everywhere.

    openai calls a key provider as each request goes out: the key is read
    again at the call's end; a key changed between calls is read again too.
    """
    db = tmp_path / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=db, litellm_proxies=[])
    tracekit.instrument_openai()
    try:
        if how == "static":
            client = openai.OpenAI(base_url=litellm_proxy.url, api_key=NOT_A_PROXY_KEY)
        elif how == "provider":
            client = openai.OpenAI(base_url=litellm_proxy.url, api_key=lambda: NOT_A_PROXY_KEY)
        else:
            client = openai.OpenAI(base_url=litellm_proxy.url, api_key="tk-first-key-0123456789")
            with tracekit.span("first"), contextlib.suppress(openai.APIStatusError):
                client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            client.api_key = NOT_A_PROXY_KEY

        @tracekit.track
        def caller() -> None:
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            raise RuntimeError(f"tried with {client.api_key}")

        with pytest.raises(RuntimeError):
            caller()
        assert tracekit.flush(10)
    finally:
        tracekit.uninstrument_openai()
        tracekit.configure(exporter="none")
    with sqlite3.connect(db) as connection:
        dump = "\n".join(connection.iterdump())
    assert "tried with" in dump
    assert NOT_A_PROXY_KEY not in dump


def test_a_call_under_opik_track_alone_nests_under_its_span(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    @opik.track(name="opik-caller")
    def caller() -> None:
        with _client(litellm_proxy) as client:
            client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]

    caller()
    opik.flush_tracker()
    assert tracekit.flush(10)
    (theirs,) = [s for s in server.spans.values() if s["name"] == "opik-caller"]
    assert server.wait_for(lambda: len(server.spans_of(theirs["trace_id"])) == 2)
    (llm,) = [s for s in server.spans_of(theirs["trace_id"]) if s["type"] == "llm"]
    assert llm["parent_span_id"] == theirs["id"]
    assert server.wait_for(lambda: len(_proxys_own_spans(server, theirs["trace_id"])) == 1, 30)


def test_a_client_opiks_track_openai_logs_is_left_to_it(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    """One LLM span per call: Opik's integration's, nested under our span."""
    from opik.integrations.openai import track_openai

    with tracekit.span("caller") as caller, track_openai(_client(litellm_proxy)) as client:
        client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    opik.flush_tracker()
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans_of(caller.trace_id)) == 2)
    (llm,) = [s for s in server.spans_of(caller.trace_id) if s["type"] == "llm"]
    assert llm["parent_span_id"] == caller.id
    assert llm["name"] != "openai.chat.completions"  # Opik's own span
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)


@pytest.mark.usefixtures("litellm_instrumented")
@pytest.mark.parametrize("stream", [False, True])
def test_with_litellm_instrumented_too_its_calls_are_one_llm_span(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any, stream: bool
) -> None:
    """LiteLLM calls OpenAI through the openai SDK: the call is LiteLLM's span alone."""
    with tracekit.span("caller") as caller:
        reply = litellm.completion(
            model=f"openai/{PRICED_MODEL}",
            api_base=litellm_proxy.url,
            api_key=MASTER_KEY,
            messages=MESSAGES,
            stream=stream,
        )
        if stream:
            list(reply)
    llm_spans = [s for s in tracekit_capture.spans if s.type == "llm"]
    assert [s.name for s in llm_spans] == ["litellm.completion"]
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)


def test_the_same_openai_call_made_directly_is_still_traced_with_litellm_instrumented(
    server: OpikServer,
    litellm_proxy: LiteLLMProxy,
    tracekit_capture: Any,
    litellm_instrumented: None,
) -> None:
    with tracekit.span("caller") as caller, _client(litellm_proxy) as client:
        client.chat.completions.create(model=PRICED_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert tracekit_capture.named("openai.chat.completions").type == "llm"
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(_proxys_own_spans(server, caller.trace_id)) == 1, 30)
