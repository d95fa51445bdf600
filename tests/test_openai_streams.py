"""Streams the suite's proxy cannot send (it fails streamed Responses calls; its mock has no
tool calls): the real openai SDK reading server-sent events from httpx's in-process
transport, byte for byte as OpenAI streams them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import litellm
import openai
import pytest

import tracekit

SNAPSHOT = "gpt-4o-mini-2024-07-18"


def _sse(events: list[dict[str, Any]]) -> bytes:
    lines = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events if "type" in e]
    lines += [f"data: {json.dumps(e)}\n\n" for e in events if "type" not in e]
    return "".join(lines).encode() + b"data: [DONE]\n\n"


RESPONSE_EVENTS = [
    {"type": "response.output_text.delta", "delta": d, "item_id": "m", "output_index": 0}
    | {"content_index": 0, "sequence_number": n}
    for n, d in enumerate(["hel", "lo"])
] + [
    {
        "type": "response.completed",
        "sequence_number": 2,
        "response": {
            "id": "resp_1",
            "object": "response",
            "created_at": 0,
            "model": SNAPSHOT,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "m",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "hello", "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": 50,
                "output_tokens": 2,
                "total_tokens": 52,
                "input_tokens_details": {"cached_tokens": 40},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        },
    }
]


def _chunk(delta: dict[str, Any], **more: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": SNAPSHOT} | {
        "choices": [choice],
        **more,
    }


def _tool_delta(index: int, **function: str) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": function}
    if "name" in function:
        call |= {"id": f"call_{index}", "type": "function"}
    return {"tool_calls": [call]}


TOOL_CALL_CHUNKS = [
    _chunk({"role": "assistant", "content": None}),
    _chunk(_tool_delta(0, name="weather", arguments="")),
    _chunk(_tool_delta(0, arguments='{"city": ')),
    _chunk(_tool_delta(1, name="time", arguments="{}")),
    _chunk(_tool_delta(0, arguments='"Paris"}')),
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": SNAPSHOT,
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    },
]


def _serve(request: httpx.Request) -> httpx.Response:
    events = RESPONSE_EVENTS if request.url.path.endswith("/responses") else TOOL_CALL_CHUNKS
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_sse(events))


@pytest.fixture
def client(tracekit_capture: Any) -> Iterator[openai.OpenAI]:
    tracekit.instrument_openai()
    transport = httpx.MockTransport(_serve)
    with openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="sk-test-not-sent-anywhere-000000",
        http_client=httpx.Client(transport=transport),
    ) as client:
        yield client
    tracekit.uninstrument_openai()


def test_a_streamed_responses_call_is_described_by_its_final_response(
    client: openai.OpenAI, tracekit_capture: Any
) -> None:
    with tracekit.span("caller"):
        events = client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "hello"
    span = tracekit_capture.named("openai.responses")
    assert span.type == "llm"
    assert span.provider == "openai"
    assert span.model == SNAPSHOT
    assert span.output == "hello"
    assert span.usage["prompt_tokens"] == 50
    assert span.usage["completion_tokens"] == 2
    price = litellm.model_cost[SNAPSHOT]
    cached = 40 * price["cache_read_input_token_cost"]
    expected = 10 * price["input_cost_per_token"] + cached + 2 * price["output_cost_per_token"]
    assert span.total_cost == pytest.approx(expected)


def test_a_streamed_chat_reply_puts_its_tool_calls_together(
    client: openai.OpenAI, tracekit_capture: Any
) -> None:
    with tracekit.span("caller"):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "weather?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        list(stream)
    span = tracekit_capture.named("openai.chat.completions")
    assert span.output == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}},
        ],
    }
    assert span.usage["total_tokens"] == 13
    assert span.metadata["model_parameters"]["stream"] is True


def test_a_client_made_before_instrumenting_is_traced(tracekit_capture: Any) -> None:
    transport = httpx.MockTransport(_serve)
    with openai.OpenAI(
        api_key="sk-test-not-sent-anywhere-000000", http_client=httpx.Client(transport=transport)
    ) as early:
        tracekit.instrument_openai()
        try:
            with tracekit.span("caller") as caller:
                list(early.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
        finally:
            tracekit.uninstrument_openai()
    assert tracekit_capture.named("openai.chat.completions").parent_id == caller.id


def test_a_raw_stream_is_left_unread_and_its_span_ends_with_no_output(
    client: openai.OpenAI, tracekit_capture: Any
) -> None:
    with tracekit.span("caller"):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[], stream=True
        )
        span = tracekit_capture.named("openai.chat.completions")
        assert span.output is None
        chunks = list(raw.parse())  # the caller reads it, untouched
    assert len(chunks) == len(TOOL_CALL_CHUNKS)
