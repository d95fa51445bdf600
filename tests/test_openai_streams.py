"""Streams the suite's proxy cannot send (it fails streamed Responses calls; its mock has no
tool calls): the real openai SDK reading server-sent events from httpx's in-process
transport, byte for byte as OpenAI streams them."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import itertools
import json
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from unittest.mock import MagicMock

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


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    tracekit.instrument_openai()
    yield
    tracekit.uninstrument_openai()


@pytest.fixture
def client(tracekit_capture: Any) -> Iterator[openai.OpenAI]:
    transport = httpx.MockTransport(_serve)
    with openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="sk-test-not-sent-anywhere-000000",
        http_client=httpx.Client(transport=transport),
    ) as client:
        yield client


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
    tracekit.uninstrument_openai()
    transport = httpx.MockTransport(_serve)
    with openai.OpenAI(
        api_key="sk-test-not-sent-anywhere-000000", http_client=httpx.Client(transport=transport)
    ) as early:
        tracekit.instrument_openai()
        with tracekit.span("caller") as caller:
            list(early.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
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


def _answering(answer: Callable[[httpx.Request], httpx.Response]) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test-not-sent-anywhere-000000",
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
    )


def _streaming(events: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_sse(events)
        )

    return answer


def test_a_stream_of_several_choices_records_the_first_as_a_call_that_is_not_streamed(
    client: openai.OpenAI, tracekit_capture: Any
) -> None:
    chunks = [
        _chunk({"content": text}) | {"choices": [{"index": i, "delta": {"content": text}}]}
        for text in ("Hel", "lo")
        for i in (0, 1)
    ]
    with tracekit.span("caller"), _answering(_streaming(chunks)) as two:
        list(two.chat.completions.create(model="gpt-4o-mini", messages=[], n=2, stream=True))
    span = tracekit_capture.named("openai.chat.completions")
    assert span.output == {"role": "assistant", "content": "Hello"}


def test_arguments_not_given_are_not_recorded(client: openai.OpenAI, tracekit_capture: Any) -> None:
    with tracekit.span("caller"):
        list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                temperature=openai.NOT_GIVEN,
                seed=openai.omit,
            )
        )
        with client.chat.completions.stream(model="gpt-4o-mini", messages=[]) as helper:
            list(helper)
    first, second = [s for s in tracekit_capture.spans if s.type == "llm"]
    assert first.metadata["model_parameters"] == {"stream": True}
    assert first.input == {"messages": [{"role": "user", "content": "hi"}]}
    assert second.input == {"messages": []}
    assert "Omit" not in repr(second.metadata)


def test_leaving_the_stream_helpers_block_early_ends_the_span_then(
    client: openai.OpenAI, tracekit_capture: Any
) -> None:
    with tracekit.span("caller"):
        with client.chat.completions.stream(model="gpt-4o-mini", messages=[]) as helper:
            for _ in helper:
                break
        (span,) = [s for s in tracekit_capture.spans if s.type == "llm"]  # ended, not at exit
    assert span.metadata["stream_completed"] is False


def test_a_responses_stream_that_failed_is_an_error(tracekit_capture: Any) -> None:
    failed = copy.deepcopy(RESPONSE_EVENTS)
    failed[-1]["type"] = "response.failed"
    failed[-1]["response"]["status"] = "failed"
    failed[-1]["response"]["error"] = {"code": "server_error", "message": "it broke"}
    with tracekit.span("caller"), _answering(_streaming(failed)) as broken:
        list(broken.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    span = tracekit_capture.named("openai.responses")
    assert span.error_info is not None
    assert span.error_info["exception_type"] == "OpenAIResponseFailed"
    assert "server_error: it broke" in span.error_info["message"]


def test_a_responses_stream_cut_short_records_its_text_as_a_string(
    tracekit_capture: Any,
) -> None:
    with tracekit.span("caller"), _answering(_streaming(RESPONSE_EVENTS[:2])) as cut:
        list(cut.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert tracekit_capture.named("openai.responses").output == "hello"


def test_responses_parse_is_traced(tracekit_capture: Any) -> None:
    final = RESPONSE_EVENTS[-1]["response"]
    with tracekit.span("caller"), _answering(lambda r: httpx.Response(200, json=final)) as c:
        c.responses.parse(model="gpt-4o-mini", input="hi")
    assert tracekit_capture.named("openai.responses").output == "hello"


def test_a_stand_in_client_is_left_alone(tracekit_capture: Any) -> None:
    """A test's MagicMock client: not traced, its result and its calls untouched."""
    from openai.resources.chat.completions import Completions

    fake = MagicMock()
    with tracekit.span("caller"):
        result = Completions(fake).create(model="m", messages=[])
    assert [s.name for s in tracekit_capture.spans] == ["caller"]
    result.close()
    result.close.assert_called_once()
    assert not [c for c in fake.mock_calls if "base_url" in str(c) or "api_key" in str(c)]


def test_a_long_stream_keeps_its_text_not_its_chunks(client: openai.OpenAI) -> None:
    with tracekit.span("caller"):
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
        seen = [weakref.ref(chunk) for chunk in itertools.islice(stream, 4)]
        gc.collect()
        # All but the last read: the SDK's own reader still holds that one.
        assert [ref() for ref in seen[:-1]] == [None] * 3
        stream.close()


def test_a_spec_mock_client_is_left_alone_too(tracekit_capture: Any) -> None:
    from openai.resources.chat.completions import Completions

    fake = MagicMock(spec=openai.OpenAI)
    with tracekit.span("caller"):
        Completions(fake).create(model="m", messages=[])
    assert [s.name for s in tracekit_capture.spans] == ["caller"]
    assert [c[0] for c in fake.mock_calls] == ["post"]


def test_a_chunk_of_an_unknown_shape_is_passed_on_untouched(tracekit_capture: Any) -> None:
    odd = _chunk({"tool_calls": [{"index": [0], "function": {"name": "x"}}]})
    with tracekit.span("caller"), _answering(_streaming([odd, _chunk({"content": "ok"})])) as c:
        chunks = list(c.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
    assert len(chunks) == 2
    assert tracekit_capture.named("openai.chat.completions").output["content"] == "ok"


def test_a_failed_responses_stream_keeps_the_text_that_came(tracekit_capture: Any) -> None:
    failed = copy.deepcopy(RESPONSE_EVENTS)
    failed[-1] |= {"type": "response.failed"}
    failed[-1]["response"] |= {"status": "failed", "output": [], "error": {"code": "x"}}
    with tracekit.span("caller"), _answering(_streaming(failed)) as broken:
        list(broken.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert tracekit_capture.named("openai.responses").output == "hello"


def test_a_cancelled_async_stream_says_what_interrupted_it(tracekit_capture: Any) -> None:
    async def one_chunk_then_nothing() -> AsyncIterator[bytes]:
        yield _sse([_chunk({"content": "Hel"})]).removesuffix(b"data: [DONE]\n\n")
        await asyncio.Event().wait()  # the server goes quiet

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, content=one_chunk_then_nothing())

    async def read_until_cancelled() -> None:
        async with openai.AsyncOpenAI(
            api_key="sk-test-not-sent-anywhere-000000",
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        ) as client:
            stream = await client.chat.completions.create(model="m", messages=[], stream=True)
            reading = asyncio.ensure_future(_read_all(stream))
            while not _chunks_read:  # the first chunk is read; the reader waits for more
                await asyncio.sleep(0)
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    _chunks_read.clear()
    with tracekit.span("caller"):
        asyncio.run(read_until_cancelled())
    span = tracekit_capture.named("openai.chat.completions")
    assert _chunks_read == ["Hel"]
    assert span.metadata["stream_completed"] is False
    assert span.metadata["interrupted_by"] == "CancelledError"


_chunks_read: list[str] = []


async def _read_all(stream: Any) -> None:
    async for chunk in stream:
        _chunks_read.append(chunk.choices[0].delta.content)
