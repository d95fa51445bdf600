"""One openai SDK call as tracekit records it, from the call to its result or stream's end.

To a configured LiteLLM proxy, the call's span is a `general` client span
and the proxy is asked to log the LLM span under it (`_proxy`). To any other
base URL (OpenAI, vLLM, a gateway), the call's span is tracekit's own LLM
span, in the shape of every LLM span (`_llm_spans`): model, messages,
output, usage, cost where LiteLLM's price list knows the model (`_prices`),
provider named as Opik's OpenAI integration names it. Nothing is added to
such a request. Nothing here imports openai.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from time import time_ns
from typing import Any
from urllib.parse import urlsplit

from tracekit import _config, _pipeline
from tracekit._context import active_span
from tracekit._log import log_once
from tracekit._span import Span
from tracekit.integrations._llm_spans import (
    LLMSpan,
    ResultFacts,
    StreamOwner,
    assistant_message,
    end_stream_owners,
    open_llm_span,
    opik_usage,
    secret_values,
)
from tracekit.integrations._prices import cost_of
from tracekit.integrations._proxy import ask_proxy_to_nest, proxy_can_nest

__all__ = ["keep_open_for_stream", "settle", "start"]

# Set on an openai stream tracekit follows: its `_StreamEnd`.
_STREAM_STATE = "_tracekit_stream"

# A client's credentials (api_key, Authorization headers), found once per client.
_client_secrets: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _client_of(resource: Any) -> Any:
    return getattr(resource, "_client", None)


def _base_url(client: Any) -> str:
    return str(getattr(client, "base_url", "") or "")


def _provider(base_url: str) -> str | None:
    """`openai` for OpenAI's own API, else the base URL's host (as Opik's integration does)."""
    try:
        host = urlsplit(base_url).hostname
    except ValueError:
        return None
    return "openai" if host == "api.openai.com" else host


def _secrets_of(client: Any) -> tuple[str, ...]:
    """The client's api_key and the credentials in its default headers.

    Registered with the redactor (by `secret_values`) the first time a client is seen.
    """
    try:
        return _client_secrets[client]
    except (KeyError, TypeError):
        pass
    found = secret_values(
        {"api_key": getattr(client, "api_key", None), "headers": client.default_headers}
    )
    with contextlib.suppress(TypeError):  # not weakly referenceable: found again next time
        _client_secrets[client] = found
    return found


def start(resource: Any, kind: str, kwargs: dict[str, Any]) -> LLMSpan | None:
    """The call's span under the active span (and, to a proxy, the request's metadata).

    None with no active span, or with tracing off: the call goes out untouched.
    """
    try:
        if not _pipeline.enabled or active_span.get() is None:
            return None
        client = _client_of(resource)
        base_url = _base_url(client)
        name = f"openai.{kind}"
        # Exporting elsewhere than Opik, the proxy's span could not nest under
        # ours (`proxy_can_nest`): the call is then an LLM span of tracekit's.
        if _config.is_litellm_proxy(base_url) and proxy_can_nest():
            span = open_llm_span(name, kwargs, "general", ("openai",))
            ask_proxy_to_nest(kwargs, span, kwargs.get("metadata"))
        else:
            span = open_llm_span(name, kwargs, "llm", ("openai",))
            span.provider = _provider(base_url)
        if client is not None:
            span.secret_values += _secrets_of(client)
        return span
    except Exception:
        log_once("openai:start", "tracekit: could not trace an openai call")
        return None


def _describe_result(facts: ResultFacts, requested_model: str | None) -> Callable[[LLMSpan], None]:
    def describe(span: LLMSpan) -> None:
        facts.describe(span)
        _price(span, requested_model)

    return describe


def _price(span: LLMSpan, requested_model: str | None) -> None:
    """Cost for an LLM span; none for a proxy's client span (tokens and cost are the proxy's)."""
    if span.type != "llm":
        span.usage = None
        return
    if span.total_cost is None:
        span.total_cost = cost_of((span.model, requested_model), span.usage)


def settle(span: LLMSpan, kind: str, result: Any, is_async: bool) -> None:
    """End `span` with `result`, or, for a stream, when the stream ends. Never raises.

    A `with_raw_response` result is parsed (openai caches it: the caller's own
    `parse()` gets the same object); a raw stream, or a
    `with_streaming_response` body, is left unread: its span has no output.
    """
    try:
        requested_model = span.model
        if hasattr(result, "_iterator") and hasattr(result, "response"):  # Stream, AsyncStream
            _follow_stream(span, kind, result, is_async)
            return
        if hasattr(result, "http_response"):  # with_raw_response / with_streaming_response
            if type(result).__name__ != "LegacyAPIResponse" or _is_stream(result):
                span.end()
                return
            result = result.parse()
        span.describe_later(_describe_result(ResultFacts(result, kind), requested_model))
    except Exception:
        log_once("openai:result", "tracekit: could not record an openai result")
    span.end()


def _is_stream(raw: Any) -> bool:
    options = getattr(raw, "_options", None)
    return bool(getattr(raw, "_stream", False) or getattr(options, "stream", False))


def _chunk_text(chunk: Any) -> str:
    """A chunk's text: a chat delta's content, or a Responses API text delta event's."""
    choices = getattr(chunk, "choices", None)
    if choices:
        text = getattr(getattr(choices[0], "delta", None), "content", None)
        return text if isinstance(text, str) else ""
    delta = getattr(chunk, "delta", None)
    if isinstance(delta, str) and getattr(chunk, "type", None) == "response.output_text.delta":
        return delta
    return ""


def _tool_call_deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    """A streamed chat reply's tool calls, put together from their deltas by index."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        choices = getattr(chunk, "choices", None)
        delta = getattr(choices[0], "delta", None) if choices else None
        for piece in getattr(delta, "tool_calls", None) or ():
            call = calls.setdefault(
                getattr(piece, "index", 0),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = getattr(piece, "id", None) or call["id"]
            function = getattr(piece, "function", None)
            for field in ("name", "arguments"):
                part = getattr(function, field, None)
                if isinstance(part, str):
                    call["function"][field] += part
    return [calls[index] for index in sorted(calls)]


def _final_response(chunks: list[Any]) -> Any:
    """A Responses API stream's final response (its `response.completed` event), if it came."""
    for chunk in reversed(chunks):
        if getattr(chunk, "type", None) in ("response.completed", "response.incomplete"):
            return getattr(chunk, "response", None)
    return None


def _describe_stream(
    kind: str, chunks: list[Any], requested_model: str | None
) -> Callable[[LLMSpan], None]:
    """How to read a stream's chunks (as far as they got) into its span, on the export thread."""

    def describe(span: LLMSpan) -> None:
        final = _final_response(chunks)
        if final is not None:
            ResultFacts(final, kind).describe(span)
            _price(span, requested_model)
            return
        message = assistant_message("".join(_chunk_text(chunk) for chunk in chunks))
        tool_calls = _tool_call_deltas(chunks)
        if message is not None and tool_calls:
            message["tool_calls"] = tool_calls
        span.output = message
        model = next((m for c in chunks if isinstance(m := getattr(c, "model", None), str)), None)
        if model:
            span.model = model
        usage = next((u for c in reversed(chunks) if (u := getattr(c, "usage", None))), None)
        span.usage = opik_usage(usage)  # sent only with stream_options={"include_usage": True}
        _price(span, requested_model)

    return describe


class _StreamEnd:
    """Ends a stream's span once: exhausted, failed, closed, or dropped unfinished."""

    __slots__ = ("chunks", "completed", "kind", "last_chunk_ns", "model", "owners", "span")

    def __init__(self, span: LLMSpan, kind: str, requested_model: str | None) -> None:
        self.span = span
        self.kind = kind
        self.model = requested_model
        self.chunks: list[Any] = []
        self.completed = False
        self.last_chunk_ns: int | None = None
        self.owners: list[StreamOwner] = []

    @property
    def done(self) -> bool:
        return self.span._end_ns is not None

    def add(self, chunk: Any) -> None:
        self.chunks.append(chunk)
        self.last_chunk_ns = time_ns()

    def finish(self, error: BaseException | None = None) -> None:
        span = self.span
        if span._end_ns is not None:
            return
        chunks = list(self.chunks)
        span.describe_later(_describe_stream(self.kind, chunks, self.model))
        if error is not None:
            span.fail(error)
        else:
            if not self.completed:
                span.metadata = {**(span.metadata or {}), "stream_completed": False}
            span.end_at(self.last_chunk_ns)  # when the consumer got the last chunk
        if self.owners:
            text = "".join(_chunk_text(chunk) for chunk in chunks)
            end_stream_owners(self.owners, text, self.completed, error)


def _follow(items: Iterator[Any], end: _StreamEnd) -> Iterator[Any]:
    try:
        for item in items:
            end.add(item)
            yield item
        end.completed = True
    except Exception as exc:
        end.finish(exc)
        raise
    finally:
        end.finish()


async def _follow_async(items: AsyncIterator[Any], end: _StreamEnd) -> AsyncIterator[Any]:
    try:
        async for item in items:
            end.add(item)
            yield item
        end.completed = True
    except Exception as exc:
        end.finish(exc)
        raise
    finally:
        end.finish()


def _follow_stream(span: LLMSpan, kind: str, stream: Any, is_async: bool) -> None:
    """End `span` when `stream` is exhausted, fails, is closed, or is collected unfinished."""
    end = _StreamEnd(span, kind, span.model)
    iterator = stream._iterator
    stream._iterator = _follow_async(iterator, end) if is_async else _follow(iterator, end)
    close = stream.close
    if is_async:

        async def close_async() -> None:
            try:
                await close()
            finally:
                end.finish()

        stream.close = close_async  # __aexit__ calls it too
    else:

        def close_sync() -> None:
            try:
                close()
            finally:
                end.finish()

        stream.close = close_sync  # __exit__ calls it too
    setattr(stream, _STREAM_STATE, end)
    weakref.finalize(stream, end.finish)  # never iterated: the generator never ran


def keep_open_for_stream(result: Any, span: Span, capture_output: bool) -> bool:
    """A tracked call that returns an openai stream tracekit follows ends with the stream."""
    end = getattr(result, _STREAM_STATE, None) if hasattr(result, "_iterator") else None
    if not isinstance(end, _StreamEnd) or end.done:
        return False
    end.owners.append((span, capture_output))
    return True
