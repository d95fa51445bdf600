"""An openai SDK stream, followed to its end: what it said, and when it ended.

The stream's span ends once, when its last chunk reaches the consumer, when
it fails, when its HTTP response is closed (`close()`, a `with` block, the
SDK's `.stream()` helpers), or, dropped unfinished, when it is collected —
then at the last chunk read, marked `stream_completed: False`. What the
chunks say is summed up as they pass (the text, tool calls, usage, a
Responses stream's final response), so a long stream costs its text, not
its chunks.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from time import time_ns
from typing import Any

import openai

from tracekit._log import log_once
from tracekit._span import Span
from tracekit.integrations._llm_spans import (
    LLMSpan,
    ResultFacts,
    StreamOwner,
    assistant_message,
    end_stream_owners,
    opik_usage,
    usage_fields,
)

__all__ = ["OpenAIResponseFailed", "follow_stream", "keep_open_for_stream"]

# Set on a stream tracekit follows: its `_StreamEnd`.
_STREAM_STATE = "_tracekit_stream"
# A Responses stream's last event, with the whole response in it.
_FINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))

# Prices an LLM span (on the export thread): (span, requested model, service tier).
Price = Callable[[LLMSpan, str | None, str | None], None]


class OpenAIResponseFailed(Exception):
    """A Responses API stream that ended with `response.failed`: the span's error."""


class _StreamEnd:
    """A stream's summary so far, and the one end of its span."""

    __slots__ = (
        "completed",
        "final",
        "kind",
        "last_chunk_ns",
        "model",
        "owners",
        "price",
        "reading",
        "requested_model",
        "service_tier",
        "span",
        "text",
        "tool_calls",
        "usage",
    )

    def __init__(self, span: LLMSpan, kind: str, price: Price) -> None:
        self.span = span
        self.kind = kind
        self.price = price
        self.requested_model = span.model
        self.completed = False
        self.reading = False  # inside the SDK's own iterator, which closes its response at the end
        self.last_chunk_ns: int | None = None
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self.service_tier: str | None = None
        self.final: Any = None
        self.owners: list[StreamOwner] = []

    def add(self, chunk: Any) -> None:
        """Sum up one chunk (only the first choice's, as for a call that is not streamed)."""
        self.last_chunk_ns = time_ns()
        choices = getattr(chunk, "choices", None)
        if choices is None:  # a Responses API event
            kind = getattr(chunk, "type", None)
            if kind == "response.output_text.delta" and isinstance(chunk.delta, str):
                self.text.append(chunk.delta)
            elif kind in _FINAL_EVENTS:
                self.final = chunk.response
            return
        if self.model is None:
            self.model = getattr(chunk, "model", None)
        if (tier := getattr(chunk, "service_tier", None)) is not None:
            self.service_tier = tier
        if (usage := getattr(chunk, "usage", None)) is not None:
            self.usage = usage_fields(usage)
        for choice in choices:
            if getattr(choice, "index", 0) != 0:
                continue
            delta = choice.delta
            if isinstance(content := getattr(delta, "content", None), str):
                self.text.append(content)
            for piece in getattr(delta, "tool_calls", None) or ():
                self._add_tool_call(piece)

    def add_safely(self, chunk: Any) -> None:
        """`add`, never raising: a chunk of a shape tracekit does not know is skipped."""
        try:
            self.add(chunk)
        except Exception:
            log_once("openai:chunk", "tracekit: could not read a chunk of an openai stream")

    def _add_tool_call(self, piece: Any) -> None:
        call = self.tool_calls.setdefault(
            getattr(piece, "index", 0),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        call["id"] = getattr(piece, "id", None) or call["id"]
        function = getattr(piece, "function", None)
        for field in ("name", "arguments"):
            part = getattr(function, field, None)
            if isinstance(part, str):
                call["function"][field] += part

    @property
    def done(self) -> bool:
        return self.span._end_ns is not None

    def finish(self, error: BaseException | None = None) -> None:
        span = self.span
        if span._end_ns is not None:
            return
        text = "".join(self.text)
        span.describe_later(self._description(text))
        final = self.final
        if error is None and getattr(final, "status", None) == "failed":
            problem = getattr(final, "error", None)
            error = OpenAIResponseFailed(
                f"{getattr(problem, 'code', None)}: {getattr(problem, 'message', None)}"
            )
        if isinstance(error, Exception):
            span.fail(error)
        else:
            if not self.completed:
                metadata = {**(span.metadata or {}), "stream_completed": False}
                if error is not None:  # cancelled, interrupted
                    metadata["interrupted_by"] = type(error).__name__
                span.metadata = metadata
            span.end_at(self.last_chunk_ns)  # when the consumer got the last chunk
        if self.owners:
            end_stream_owners(self.owners, text, self.completed, error)

    def _description(self, text: str) -> Callable[[LLMSpan], None]:
        """How to fill the span from this summary (a copy of it), on the export thread."""
        kind, final, price = self.kind, self.final, self.price
        requested, tier = self.requested_model, self.service_tier
        model, usage = self.model, self.usage
        tool_calls = [self.tool_calls[index] for index in sorted(self.tool_calls)]

        def describe(span: LLMSpan) -> None:
            if final is not None:
                ResultFacts(final, kind).describe(span)
                if not span.output and text:  # a failed response: what came before
                    span.output = text
                price(span, requested, getattr(final, "service_tier", None))
                return
            if kind == "responses":
                span.output = text
            else:
                message = assistant_message(text)
                if message is not None and tool_calls:
                    message["tool_calls"] = tool_calls
                span.output = message
            if model:
                span.model = model
            span.usage = opik_usage(usage)  # sent with stream_options={"include_usage": True}
            price(span, requested, tier)

        return describe


def _follow(items: Iterator[Any], end: _StreamEnd) -> Iterator[Any]:
    try:
        while True:
            end.reading = True
            try:
                item = next(items)
            except StopIteration:
                end.completed = True
                return
            finally:
                end.reading = False
            end.add_safely(item)
            yield item
    except GeneratorExit:  # the consumer closed or dropped the stream
        raise
    except BaseException as exc:
        end.finish(exc)
        raise
    finally:
        end.finish()


async def _follow_async(items: AsyncIterator[Any], end: _StreamEnd) -> AsyncIterator[Any]:
    try:
        while True:
            end.reading = True
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                end.completed = True
                return
            finally:
                end.reading = False
            end.add_safely(item)
            yield item
    except GeneratorExit:  # the consumer closed or dropped the stream
        raise
    except BaseException as exc:
        end.finish(exc)
        raise
    finally:
        end.finish()


def _end_when_closed(response: Any, end: _StreamEnd, is_async: bool) -> None:
    """End the span when the stream's HTTP response is closed (by the consumer, not the SDK).

    Every way of closing a stream comes here: `close()`, a `with` block, the
    `.stream()` helpers. The SDK's own iterator closes the response as the
    last chunk is read; then the stream has completed, and `_follow` ends it.
    """
    if is_async:
        aclose = response.aclose

        async def aclose_and_end() -> None:
            try:
                await aclose()
            finally:
                if not end.reading:
                    end.finish()

        response.aclose = aclose_and_end
    else:
        close = response.close

        def close_and_end() -> None:
            try:
                close()
            finally:
                if not end.reading:
                    end.finish()

        response.close = close_and_end


def follow_stream(span: LLMSpan, kind: str, stream: Any, price: Price) -> None:
    """End `span` when `stream` is exhausted, fails, is closed, or is collected unfinished."""
    end = _StreamEnd(span, kind, price)
    is_async = isinstance(stream, openai.AsyncStream)
    iterator = stream._iterator
    stream._iterator = _follow_async(iterator, end) if is_async else _follow(iterator, end)
    _end_when_closed(stream.response, end, is_async)
    setattr(stream, _STREAM_STATE, end)
    weakref.finalize(stream, end.finish)  # never iterated: the generator never ran


def keep_open_for_stream(result: Any, span: Span, capture_output: bool) -> bool:
    """A tracked call that returns an openai stream tracekit follows ends with the stream."""
    if not isinstance(result, openai.Stream | openai.AsyncStream):
        return False
    end = getattr(result, _STREAM_STATE, None)
    if not isinstance(end, _StreamEnd) or end.done:
        return False
    end.owners.append((span, capture_output))
    return True
