"""LiteLLM calls attach to the active span and get exactly one LLM span each,
when tracekit logs them itself (LiteLLM's Opik callback off).

Everything runs the real litellm with `mock_response`, which goes through
LiteLLM's whole pipeline: setup, callbacks, stream chunking.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import litellm
import pytest
import trio
from litellm import completion  # imported before instrumenting, on purpose
from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

import tracekit
from tests.polling import until
from tracekit.testing import Capture

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "gpt-4o-mini"
pytestmark = pytest.mark.usefixtures("litellm_instrumented")


class MetadataSpy(CustomLogger):
    """A real LiteLLM callback that keeps the metadata each call carried."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata: list[dict[str, Any]] = []

    # LiteLLM passes these by keyword: the names matter.
    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.metadata.append(dict(kwargs["litellm_params"].get("metadata") or {}))

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)


def llm_spans(capture: Capture) -> list[tracekit.Span]:
    return [s for s in capture.spans if s.type == "llm"]


# -- 1. auto-fill -------------------------------------------------------------


def test_metadata_carries_the_active_span_project_tags_and_thread(
    tracekit_capture: Capture,
) -> None:
    """A call under a span carries current_span_data, project, tags and thread in metadata."""
    spy = MetadataSpy()
    litellm.callbacks = [spy]
    with (
        tracekit.context(project_name="proj", thread_id="th-1", tags=["ctx"]),
        tracekit.span("agent") as agent,
    ):
        completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    assert until(lambda: len(spy.metadata) == 1)
    opik = spy.metadata[0]["opik"]
    assert opik["current_span_data"] == {"id": agent.id, "trace_id": agent.trace_id}
    assert opik["project_name"] == "proj"
    assert opik["tags"] == ["ctx"]
    assert opik["thread_id"] == "th-1"


def test_callers_values_win_and_its_dicts_are_not_changed(tracekit_capture: Capture) -> None:
    """Explicit metadata["opik"] values win; the caller's dicts are left as they were."""
    spy = MetadataSpy()
    litellm.callbacks = [spy]
    mine = {"opik": {"tags": ["mine"], "project_name": "explicit"}, "team": "a"}
    snapshot = {"opik": {"tags": ["mine"], "project_name": "explicit"}, "team": "a"}
    with tracekit.context(project_name="ctx"), tracekit.span("agent") as agent:
        completion(model=MODEL, messages=MESSAGES, mock_response="ok", metadata=mine)
    assert mine == snapshot
    assert until(lambda: len(spy.metadata) == 1)
    sent = spy.metadata[0]
    assert sent["team"] == "a"
    assert sent["opik"]["tags"] == ["mine"]
    assert sent["opik"]["project_name"] == "explicit"
    assert sent["opik"]["current_span_data"]["id"] == agent.id


def test_without_an_active_span_the_call_is_untouched(tracekit_capture: Capture) -> None:
    """No active span: no metadata is added (the call is still logged as its own trace)."""
    spy = MetadataSpy()
    litellm.callbacks = [spy]
    completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    assert until(lambda: len(spy.metadata) == 1)
    assert "opik" not in spy.metadata[0]
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id is None


def test_function_imported_before_instrumenting_is_covered(tracekit_capture: Capture) -> None:
    """`from litellm import completion` done before instrument_litellm() still attaches."""
    tracekit.uninstrument_litellm()
    tracekit.instrument_litellm()
    with tracekit.span("agent") as agent:
        completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == agent.id


def _patched_attributes() -> dict[str, Any]:
    import litellm.utils as litellm_utils
    from litellm.integrations.opik.opik import OpikLogger
    from litellm.litellm_core_utils.litellm_logging import Logging
    from opik.decorator import span_creation_handler

    return {
        "function_setup": litellm_utils.function_setup,
        "update_response_metadata": litellm_utils.update_response_metadata,
        "failure_handler": Logging.__dict__["failure_handler"],
        "__next__": CustomStreamWrapper.__dict__["__next__"],
        "__anext__": CustomStreamWrapper.__dict__["__anext__"],
        "aclose": CustomStreamWrapper.__dict__["aclose"],
        "log_success_event": OpikLogger.__dict__["log_success_event"],
        "async_log_success_event": OpikLogger.__dict__["async_log_success_event"],
        "create_span": span_creation_handler.__dict__["create_span_respecting_context"],
    }


def test_instrumenting_twice_is_once_and_uninstrument_restores(tracekit_capture: Capture) -> None:
    """instrument twice logs one span per call; uninstrument puts back every original."""
    tracekit.uninstrument_litellm()
    originals = _patched_attributes()
    tracekit.instrument_litellm()
    tracekit.instrument_litellm()
    patched = _patched_attributes()
    assert all(patched[name] is not originals[name] for name in originals)
    with tracekit.span("agent"):
        completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    assert len(llm_spans(tracekit_capture)) == 1
    tracekit.uninstrument_litellm()
    restored = _patched_attributes()
    assert all(restored[name] is originals[name] for name in originals)
    with tracekit.span("agent"):
        completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    assert len(llm_spans(tracekit_capture)) == 1


def _renamed(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """As if a LiteLLM release had renamed the hook at `path` (`Class.method` or name)."""
    from tracekit.integrations import litellm as integration

    hooks = tuple(
        (module, f"{hook}_renamed" if hook == path else hook, wrapper, required)
        for module, hook, wrapper, required in integration._HOOKS
    )
    monkeypatch.setattr(integration, "_HOOKS", hooks)


def test_a_missing_hook_patches_nothing_and_says_which(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A LiteLLM without a required hook: a clear error, and every original left in place."""
    tracekit.uninstrument_litellm()
    originals = _patched_attributes()
    _renamed(monkeypatch, "Logging.failure_handler")  # the third of eight: two come before
    with pytest.raises(tracekit.LiteLLMNotSupported) as raised:
        tracekit.instrument_litellm()
    message = str(raised.value)
    assert "litellm.litellm_core_utils.litellm_logging.Logging.failure_handler_renamed" in message
    assert importlib.metadata.version("litellm") in message
    assert "nothing was patched" in message
    assert ">=1.83.7" in message
    assert _patched_attributes() == originals
    monkeypatch.undo()
    tracekit.instrument_litellm()  # not a silent no-op once the hook is back
    assert _patched_attributes()["function_setup"] is not originals["function_setup"]


def test_a_missing_optional_hook_warns_once_and_instruments_the_rest(
    tracekit_capture: Capture,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without `CustomStreamWrapper.aclose`, calls are still attached, with one warning."""
    tracekit.uninstrument_litellm()
    _renamed(monkeypatch, "CustomStreamWrapper.aclose")
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        tracekit.instrument_litellm()
    assert [r.getMessage() for r in caplog.records if "aclose" in r.getMessage()]
    with tracekit.span("agent") as agent:
        completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == agent.id
    tracekit.uninstrument_litellm()


# -- 3. one LLM span per call, with its content ----------------------------------------


def test_the_llm_span_records_model_provider_messages_output_usage_cost(
    tracekit_capture: Capture,
) -> None:
    """The LLM span has type llm, model, provider, input messages, output, usage and cost."""
    with tracekit.span("agent"):
        response = completion(
            model=MODEL, messages=MESSAGES, mock_response="hello", temperature=0.1
        )
    assert response.choices[0].message.content == "hello"
    (llm,) = llm_spans(tracekit_capture)
    assert llm.name == "litellm.completion"
    assert (llm.model, llm.provider) == (MODEL, "openai")
    assert llm.input == {"messages": MESSAGES}
    assert llm.output == {"role": "assistant", "content": "hello"}
    counts = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    # Opik's format: the counts, and the provider's usage under original_usage.
    assert llm.usage == {**counts, **{f"original_usage.{k}": v for k, v in counts.items()}}
    assert llm.total_cost is not None
    assert llm.total_cost > 0
    assert llm.metadata == {"model_parameters": {"temperature": 0.1}}
    assert llm.tags == ["litellm"]


SYNC_ENTRY_POINTS: dict[str, Callable[[], Any]] = {
    "completion": lambda: litellm.completion(model=MODEL, messages=MESSAGES, mock_response="x"),
    "text_completion": lambda: litellm.text_completion(
        model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="x"
    ),
    "embedding": lambda: litellm.embedding(
        model="text-embedding-3-small", input=["a"], mock_response=[0.1]
    ),
    "responses": lambda: litellm.responses(model=MODEL, input="hi", mock_response="x"),
    "image_generation": lambda: litellm.image_generation(
        model="dall-e-3", prompt="cat", mock_response="https://example.invalid/cat.png"
    ),
}
ASYNC_ENTRY_POINTS: dict[str, Callable[[], Any]] = {
    "acompletion": lambda: litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="x"),
    "atext_completion": lambda: litellm.atext_completion(
        model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="x"
    ),
    "aembedding": lambda: litellm.aembedding(
        model="text-embedding-3-small", input=["a"], mock_response=[0.1]
    ),
    "aresponses": lambda: litellm.aresponses(model=MODEL, input="hi", mock_response="x"),
    "aimage_generation": lambda: litellm.aimage_generation(
        model="dall-e-3", prompt="cat", mock_response="https://example.invalid/cat.png"
    ),
}


@pytest.mark.parametrize("entry", SYNC_ENTRY_POINTS)
def test_every_sync_entry_point_gets_one_llm_span_under_the_active_span(
    entry: str, tracekit_capture: Capture
) -> None:
    """completion, text_completion, embedding, responses, image_generation: one child each."""
    with tracekit.span("agent") as agent:
        SYNC_ENTRY_POINTS[entry]()
    (llm,) = llm_spans(tracekit_capture)
    assert llm.name == f"litellm.{entry}"
    assert llm.parent_id == agent.id
    assert llm.error_info is None


@pytest.mark.parametrize("entry", ASYNC_ENTRY_POINTS)
def test_every_async_entry_point_gets_one_llm_span_under_the_active_span(
    entry: str, tracekit_capture: Capture
) -> None:
    """The async entry points attach to the span active in the awaiting task."""

    async def main() -> str:
        with tracekit.span("agent") as agent:
            await ASYNC_ENTRY_POINTS[entry]()
        return agent.id

    agent_id = asyncio.run(main())
    (llm,) = llm_spans(tracekit_capture)
    assert llm.name == f"litellm.{entry.removeprefix('a')}"  # named as the sync kind
    assert llm.parent_id == agent_id


def test_router_calls_attach_too(tracekit_capture: Capture) -> None:
    """litellm.Router completion and acompletion calls nest under the active span."""
    router = litellm.Router(
        model_list=[
            {
                "model_name": "fast",
                "litellm_params": {"model": MODEL, "mock_response": "routed"},
            }
        ]
    )
    with tracekit.span("agent") as agent:
        assert router.completion(model="fast", messages=MESSAGES).choices[0].message.content
        asyncio.run(router.acompletion(model="fast", messages=MESSAGES))
    spans = llm_spans(tracekit_capture)
    assert len(spans) == 2
    assert {s.parent_id for s in spans} == {agent.id}


# -- failures --------------------------------------------------------------------------


def test_a_failed_call_is_an_llm_span_with_error_info(tracekit_capture: Capture) -> None:
    """mock_response=Exception: the span records the error; the caller gets LiteLLM's error."""
    with tracekit.span("agent") as agent, pytest.raises(litellm.InternalServerError) as raised:
        completion(model=MODEL, messages=MESSAGES, mock_response=Exception("provider down"))
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == agent.id
    assert llm.error_info is not None
    assert llm.error_info["exception_type"] == type(raised.value).__name__
    assert "provider down" in llm.error_info["message"]


def test_a_missing_credential_is_logged_as_a_failure(tracekit_capture: Capture) -> None:
    """A provider error raised before any request (no API key) is still one error span."""
    with tracekit.span("agent"), pytest.raises(litellm.APIConnectionError):
        litellm.rerank(model="cohere/rerank-english-v3.0", query="q", documents=["a"])
    (llm,) = llm_spans(tracekit_capture)
    assert llm.name == "litellm.rerank"
    assert llm.error_info is not None


def test_a_timeout_is_logged_as_a_failure(tracekit_capture: Capture) -> None:
    """mock_timeout: the Timeout reaches the caller and the span records it."""
    with tracekit.span("agent"), pytest.raises(litellm.Timeout):
        completion(model=MODEL, messages=MESSAGES, mock_timeout=True, timeout=0.01)
    (llm,) = llm_spans(tracekit_capture)
    assert llm.error_info is not None
    assert llm.error_info["exception_type"] == "Timeout"


def test_a_cancelled_call_is_logged_as_interrupted(tracekit_capture: Capture) -> None:
    """An acompletion cancelled mid-call still gets its LLM span, marked interrupted."""

    async def main() -> None:
        with tracekit.span("agent"):
            task = asyncio.create_task(
                litellm.acompletion(
                    model=MODEL, messages=MESSAGES, mock_response="slow", mock_delay=30
                )
            )
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert until(lambda: len(llm_spans(tracekit_capture)) == 1)
    (llm,) = llm_spans(tracekit_capture)
    assert llm.error_info is not None
    assert llm.error_info["exception_type"] == "LLMCallInterrupted"


# -- 2. streams ------------------------------------------------------------------------


def _texts(chunks: list[Any]) -> list[str | None]:
    return [chunk.choices[0].delta.content for chunk in chunks]


def test_a_sync_stream_keeps_its_parent_and_ends_at_the_last_chunk(
    tracekit_capture: Capture,
) -> None:
    """The stream's LLM span is the caller's child and ends when the last chunk is read."""
    with tracekit.span("agent") as agent:
        stream = completion(model=MODEL, messages=MESSAGES, mock_response="a b c", stream=True)
    chunks = list(stream)
    consumed_at = time.time_ns()
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == agent.id
    assert llm.output == {"role": "assistant", "content": "a b c"}
    assert llm.end_time is not None
    assert llm.end_time.timestamp() * 1e9 <= consumed_at
    assert "".join(t for t in _texts(chunks) if t) == "a b c"


def test_stream_chunks_are_unchanged_by_instrumenting() -> None:
    """The caller gets a CustomStreamWrapper with the same chunk texts either way."""
    with tracekit.span("agent"):
        traced = completion(model=MODEL, messages=MESSAGES, mock_response="x y z", stream=True)
    assert isinstance(traced, CustomStreamWrapper)
    traced_texts = _texts(list(traced))
    tracekit.uninstrument_litellm()
    plain = completion(model=MODEL, messages=MESSAGES, mock_response="x y z", stream=True)
    assert traced_texts == _texts(list(plain))


def test_an_async_stream_consumed_in_another_task_keeps_its_parent(
    tracekit_capture: Capture,
) -> None:
    """An async stream made under one span and read in another task still nests there."""

    async def main() -> str:
        with tracekit.span("agent") as agent:
            stream = await litellm.acompletion(
                model=MODEL, messages=MESSAGES, mock_response="p q", stream=True
            )

        async def consume() -> None:
            async for _ in stream:
                pass

        await asyncio.create_task(consume())
        return agent.id

    agent_id = asyncio.run(main())
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == agent_id
    assert llm.output == {"role": "assistant", "content": "p q"}


def test_a_stream_abandoned_early_is_logged_with_its_partial_output(
    tracekit_capture: Capture,
) -> None:
    """Breaking out of a sync stream and dropping it logs the span, stream_completed False."""
    with tracekit.span("agent") as agent:
        stream = completion(
            model=MODEL, messages=MESSAGES, mock_response="one two three four", stream=True
        )
        first = next(stream)
        del stream
    assert until(lambda: len(llm_spans(tracekit_capture)) == 1)
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == agent.id
    assert llm.metadata is not None
    assert llm.metadata["stream_completed"] is False
    assert llm.output == {"role": "assistant", "content": first.choices[0].delta.content}


def test_an_async_stream_closed_early_is_logged_at_once(tracekit_capture: Capture) -> None:
    """aclose() after a break logs the span right away, with the partial output."""

    async def main() -> None:
        with tracekit.span("agent"):
            stream = await litellm.acompletion(
                model=MODEL, messages=MESSAGES, mock_response="one two three four", stream=True
            )
            async for _ in stream:
                break
            await stream.aclose()

    asyncio.run(main())
    (llm,) = llm_spans(tracekit_capture)
    assert llm.metadata is not None
    assert llm.metadata["stream_completed"] is False
    assert llm.output
    assert "one two three four".startswith(llm.output["content"])


def test_a_tracked_function_returning_a_stream_ends_with_the_stream(
    tracekit_capture: Capture,
) -> None:
    """The tracked function's span stays open until the stream ends; its output is the text."""

    @tracekit.track
    def ask() -> Any:
        return completion(
            model=MODEL, messages=MESSAGES, mock_response="streamed answer", stream=True
        )

    stream = ask()
    assert isinstance(stream, CustomStreamWrapper)
    assert tracekit_capture.spans == []
    texts = _texts(list(stream))
    llm, owner = tracekit_capture.spans
    assert owner.name == "ask"
    assert owner.output == "streamed answer"
    assert llm.parent_id == owner.id
    assert owner.end_time is not None
    assert llm.end_time is not None
    assert owner.end_time >= llm.end_time
    assert "".join(t for t in texts if t) == "streamed answer"


def test_an_async_tracked_function_returning_an_abandoned_stream(
    tracekit_capture: Capture,
) -> None:
    """An async tracked function's returned stream, closed early, ends both spans as partial."""

    @tracekit.track
    async def ask() -> Any:
        return await litellm.acompletion(
            model=MODEL, messages=MESSAGES, mock_response="a b c d e f", stream=True
        )

    async def main() -> None:
        stream = await ask()
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(main())
    llm, owner = tracekit_capture.spans
    for span in (llm, owner):
        assert span.metadata is not None
        assert span.metadata["stream_completed"] is False
    assert llm.output == {"role": "assistant", "content": owner.output}


# -- 5. everywhere the stack goes ------------------------------------------------------


def test_an_async_generator_re_yielding_a_stream_broken_early(tracekit_capture: Capture) -> None:
    """A tracked async generator re-yields a stream; the consumer breaks out; all nest right."""

    @tracekit.track
    async def relay() -> AsyncGenerator[str, None]:
        stream = await litellm.acompletion(
            model=MODEL, messages=MESSAGES, mock_response="w1 w2 w3 w4", stream=True
        )
        try:
            async for chunk in stream:
                yield chunk.choices[0].delta.content or ""
        finally:
            await stream.aclose()

    async def main() -> str:
        with tracekit.span("handler") as handler:
            gen = relay()
            async for _ in gen:
                break
            await gen.aclose()
        return handler.id

    handler_id = asyncio.run(main())
    (llm,) = llm_spans(tracekit_capture)
    relay_span = tracekit_capture.named("relay")
    assert relay_span.parent_id == handler_id
    assert llm.parent_id == relay_span.id
    assert llm.metadata is not None
    assert llm.metadata["stream_completed"] is False


def test_gather_fan_out_attaches_each_call_to_its_task_span(tracekit_capture: Capture) -> None:
    """Calls gathered from several tracked coroutines each nest under their own span."""

    @tracekit.track
    async def worker(n: int) -> str:
        response = await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response=f"r{n}")
        return str(response.choices[0].message.content)

    @tracekit.track
    async def fan_out() -> list[str]:
        return list(await asyncio.gather(*(worker(n) for n in range(4))))

    assert asyncio.run(fan_out()) == ["r0", "r1", "r2", "r3"]
    workers = {s.id: s for s in tracekit_capture.spans if s.name == "worker"}
    calls = llm_spans(tracekit_capture)
    assert len(calls) == 4
    assert {c.parent_id for c in calls} == set(workers)


def test_thread_pool_calls_attach_to_the_submitting_span(tracekit_capture: Capture) -> None:
    """completion in tracekit.ThreadPoolExecutor threads nests under the submitter."""
    with tracekit.span("batch") as batch, tracekit.ThreadPoolExecutor(max_workers=3) as pool:
        list(
            pool.map(
                lambda n: completion(model=MODEL, messages=MESSAGES, mock_response=f"t{n}"),
                range(3),
            )
        )
    calls = llm_spans(tracekit_capture)
    assert len(calls) == 3
    assert {c.parent_id for c in calls} == {batch.id}


def test_trio_to_thread_run_sync_attaches_to_the_trio_task_span(tracekit_capture: Capture) -> None:
    """Under trio, trio.to_thread.run_sync(litellm.completion, ...) nests under the span."""

    def call() -> Any:
        return litellm.completion(model=MODEL, messages=MESSAGES, mock_response="from trio")

    @tracekit.track
    async def trio_agent() -> str:
        response = await trio.to_thread.run_sync(call)
        return str(response.choices[0].message.content)

    assert trio.run(trio_agent) == "from trio"
    (llm,) = llm_spans(tracekit_capture)
    assert llm.parent_id == tracekit_capture.named("trio_agent").id


# -- 6. secrets ------------------------------------------------------------------------


def test_credentials_never_reach_a_span_or_a_log_line(
    tracekit_capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    """api_key and other credential arguments are absent from every span and log record."""
    secret = "sk-live-never-log-me"
    with tracekit.span("agent"):
        completion(
            model=MODEL,
            messages=MESSAGES,
            mock_response="ok",
            api_key=secret,
            api_base="https://user:pass@example.invalid",
            aws_secret_access_key=secret,
        )
        with pytest.raises(litellm.InternalServerError):
            completion(model=MODEL, messages=MESSAGES, mock_response=Exception("x"), api_key=secret)
    dumped = repr(
        [
            (s.input, s.output, s.metadata, s.error_info, s.usage, s.model, s.provider)
            for s in tracekit_capture.spans
        ]
    )
    assert secret not in dumped
    assert "user:pass" not in dumped
    assert secret not in caplog.text


def test_the_input_is_the_messages_as_they_were_at_the_call(tracekit_capture: Capture) -> None:
    """Appending the reply to the messages list afterwards does not change the span's input."""
    history = [{"role": "user", "content": "hi"}]
    with tracekit.span("chat"):
        reply = completion(model=MODEL, messages=history, mock_response="hello")
    history.append({"role": "assistant", "content": reply.choices[0].message.content})
    (llm,) = llm_spans(tracekit_capture)
    assert llm.input == {"messages": [{"role": "user", "content": "hi"}]}


def test_a_provider_error_quoting_the_api_key_is_redacted(
    exported_capture: Capture, tmp_path: Any
) -> None:
    """An error message that repeats the call's api_key shows REDACTED in the span and file."""
    secret = "sk-proj-quoted-back-1234"
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "t.db", flush_interval=0.01)
    try:
        with tracekit.span("agent"), pytest.raises(litellm.InternalServerError) as raised:
            completion(
                model=MODEL,
                messages=MESSAGES,
                api_key=secret,
                extra_headers={"Authorization": f"Bearer {secret}x"},
                mock_response=Exception(f"Incorrect API key provided: {secret}"),
            )
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    assert secret in str(raised.value)  # the caller's exception is untouched
    (llm,) = llm_spans(exported_capture)
    assert llm.error_info is not None
    assert secret not in llm.error_info["message"]
    assert "REDACTED" in llm.error_info["message"]
    assert secret not in llm.error_info["traceback"]
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("t.db*"))  # WAL included
    assert b"Incorrect API key provided" in stored
    assert secret.encode() not in stored


def test_open_calls_are_bounded(tracekit_capture: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_LIVE_CALLS open calls (streams never read), the oldest is given up and logged."""
    from tracekit.integrations import _llm_calls

    for leftover in list(_llm_calls.live_calls.values()):  # from earlier tests' streams
        leftover.give_up()
    tracekit_capture.clear()
    monkeypatch.setattr(_llm_calls, "MAX_LIVE_CALLS", 2)
    with tracekit.span("agent"):
        streams = [
            completion(model=MODEL, messages=MESSAGES, mock_response=f"s{i}", stream=True)
            for i in range(3)
        ]
    (oldest,) = llm_spans(tracekit_capture)
    assert oldest.metadata is not None
    assert oldest.metadata["stream_completed"] is False
    assert len(_llm_calls.live_calls) == 2
    for stream in streams:
        list(stream)
    assert len(llm_spans(tracekit_capture)) == 3
