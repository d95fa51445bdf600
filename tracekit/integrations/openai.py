"""The `openai` SDK pointed at a LiteLLM proxy: its calls join the caller's trace.

`instrument_openai()` patches the `create` methods of chat completions,
responses and embeddings, and `chat.completions.parse`, sync and async.
`with_raw_response` / `with_streaming_response` call the method as it was
when they were first used on a client: used before instrumenting, they are
not traced (openai keeps them per client). For a client whose `base_url` is one of the
configured LiteLLM proxies (`configure(litellm_proxies=[...])`), a call made
under an active span opens a `general` client span (input, output, latency)
and asks the proxy to log its LLM span under it (`_proxy.ask_proxy_to_nest`):
one LLM span per call, the proxy's. Calls to other base URLs are not traced
yet. A stream's client span ends when the stream is exhausted, closed, or
dropped unfinished (then marked `stream_completed: False`).
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import wrapt

from tracekit import _config, _pipeline
from tracekit._context import active_span
from tracekit._inputs import snapshot
from tracekit._log import log_once
from tracekit._span import Span
from tracekit.integrations._proxy import ask_proxy_to_nest

__all__ = ["instrument_openai", "uninstrument_openai"]

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"

# (module, class, method, what the span is named after, the arguments kept as input)
_TARGETS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = tuple(
    (module, cls, method, name, kept)
    for module, classes, methods, name, kept in (
        (
            _CHAT,
            ("Completions", "AsyncCompletions"),
            ("create", "parse"),
            "chat.completions",
            ("messages",),
        ),
        (
            _RESPONSES,
            ("Responses", "AsyncResponses"),
            ("create",),
            "responses",
            ("input", "instructions"),
        ),
        (_EMBEDDINGS, ("Embeddings", "AsyncEmbeddings"), ("create",), "embeddings", ("input",)),
    )
    for cls in classes
    for method in methods
)

_lock = threading.Lock()
_originals: list[tuple[type, str, Any]] = []


def _base_url(resource: Any) -> str:
    client = getattr(resource, "_client", None)
    return str(getattr(client, "base_url", "") or "")


def _client_span(name: str, kwargs: dict[str, Any], kept: tuple[str, ...]) -> Span:
    model = kwargs.get("model")
    inputs = {key: snapshot(kwargs[key]) for key in kept if kwargs.get(key) is not None}
    if isinstance(model, str):
        inputs["model"] = model
    span = Span(f"openai.{name}", "general", active_span.get(), tags=("openai",), input=inputs)
    ask_proxy_to_nest(kwargs, span, kwargs.get("metadata"))
    return span


def _output_of(result: Any) -> Any:
    choices = getattr(result, "choices", None)
    if choices:
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        return {"role": "assistant", "content": content}
    text = getattr(result, "output_text", None)
    if isinstance(text, str):
        return text
    data = getattr(result, "data", None)
    if isinstance(data, list):
        return {"items": len(data)}
    return None


def _chunk_text(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None)
    if choices:
        text = getattr(getattr(choices[0], "delta", None), "content", None)
        return text if isinstance(text, str) else ""
    delta = getattr(chunk, "delta", None)  # responses: response.output_text.delta events
    return delta if isinstance(delta, str) and getattr(chunk, "type", "").endswith(".delta") else ""


class _StreamEnd:
    """Ends a stream's client span once: exhausted, failed, closed or dropped."""

    __slots__ = ("completed", "pieces", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.pieces: list[str] = []
        self.completed = False

    def finish(self, error: BaseException | None = None) -> None:
        span = self.span
        if span._end_ns is not None:
            return
        span.output = {"role": "assistant", "content": "".join(self.pieces)}
        if not self.completed:
            span.metadata = {**(span.metadata or {}), "stream_completed": False}
        if error is not None:
            span.fail(error)
        else:
            span.end()


def _follow(items: Iterator[Any], end: _StreamEnd) -> Iterator[Any]:
    try:
        for item in items:
            end.pieces.append(_chunk_text(item))
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
            end.pieces.append(_chunk_text(item))
            yield item
        end.completed = True
    except Exception as exc:
        end.finish(exc)
        raise
    finally:
        end.finish()


def _follow_stream(span: Span, stream: Any, is_async: bool) -> None:
    """End `span` when `stream` is exhausted, fails, is closed, or is collected unfinished."""
    end = _StreamEnd(span)
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
    weakref.finalize(stream, end.finish)  # never iterated: the generator never ran


def _settle(span: Span, result: Any, is_async: bool) -> None:
    """End `span` with `result`, or, for a stream, when the stream ends. Never raises.

    A `with_raw_response` result is left unread (the caller parses it, or
    not): its span records no output.
    """
    try:
        if hasattr(result, "_iterator") and hasattr(result, "response"):  # Stream, AsyncStream
            _follow_stream(span, result, is_async)
            return
        if not hasattr(result, "http_response"):
            span.output = _output_of(result)
    except Exception:
        log_once("openai:result", "tracekit: could not record an openai result")
    span.end()


def _start(resource: Any, name: str, kwargs: dict[str, Any], kept: tuple[str, ...]) -> Span | None:
    """The call's client span when it goes to a listed proxy under an active span, else None."""
    try:
        if (
            _pipeline.enabled
            and active_span.get() is not None
            and _config.is_litellm_proxy(_base_url(resource))
        ):
            return _client_span(name, kwargs, kept)
    except Exception:
        log_once("openai:start", "tracekit: could not trace an openai call")
    return None


def _sync_wrapper(name: str, kept: tuple[str, ...]) -> Callable[..., Any]:
    def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        span = _start(instance, name, kwargs, kept)
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            span.fail(exc)
            raise
        _settle(span, result, is_async=False)
        return result

    return call


def _async_wrapper(name: str, kept: tuple[str, ...]) -> Callable[..., Any]:
    async def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        span = _start(instance, name, kwargs, kept)
        if span is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            span.fail(exc)
            raise
        _settle(span, result, is_async=True)
        return result

    return call


def instrument_openai() -> None:
    """Patch the openai SDK (idempotent, thread-safe; see the module's docstring)."""
    with _lock:
        if _originals:
            return
        for module_name, class_name, method, name, kept in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name)
            original = cls.__dict__.get(method)
            if original is None:  # an older openai without it
                continue
            is_async = class_name.startswith("Async")
            wrapper = (_async_wrapper if is_async else _sync_wrapper)(name, kept)
            setattr(cls, method, wrapt.FunctionWrapper(original, wrapper))
            _originals.append((cls, method, original))


def uninstrument_openai() -> None:
    """Undo `instrument_openai()`."""
    with _lock:
        for cls, method, original in _originals:
            setattr(cls, method, original)
        _originals.clear()
