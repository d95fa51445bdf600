"""The `openai` SDK pointed at a LiteLLM proxy: its calls join the caller's trace.

`instrument_openai()` patches the `create` methods of chat completions,
responses and embeddings, sync and async (`with_raw_response` included:
it calls the patched method). For a client whose `base_url` is one of the
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

# (module, class, what the span is named after, the arguments kept as input)
_TARGETS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "openai.resources.chat.completions.completions",
        "Completions",
        "chat.completions",
        ("messages",),
    ),
    (
        "openai.resources.chat.completions.completions",
        "AsyncCompletions",
        "chat.completions",
        ("messages",),
    ),
    ("openai.resources.responses.responses", "Responses", "responses", ("input", "instructions")),
    (
        "openai.resources.responses.responses",
        "AsyncResponses",
        "responses",
        ("input", "instructions"),
    ),
    ("openai.resources.embeddings", "Embeddings", "embeddings", ("input",)),
    ("openai.resources.embeddings", "AsyncEmbeddings", "embeddings", ("input",)),
)

_lock = threading.Lock()
_originals: list[tuple[type, Any]] = []


def _base_url(resource: Any) -> str:
    client = getattr(resource, "_client", None)
    return str(getattr(client, "base_url", "") or "")


def _client_span(name: str, kwargs: dict[str, Any], kept: tuple[str, ...]) -> Span:
    model = kwargs.get("model")
    inputs = {key: snapshot(kwargs[key]) for key in kept if kwargs.get(key) is not None}
    if isinstance(model, str):
        inputs["model"] = model
    span = Span(f"openai.{name}", "general", active_span.get(), tags=("openai",), input=inputs)
    ask_proxy_to_nest(kwargs, span)
    return span


def _parsed(result: Any) -> Any:
    """`with_raw_response` returns the HTTP response: its parsed body (cached by openai)."""
    if hasattr(result, "http_response") and callable(getattr(result, "parse", None)):
        return result.parse()
    return result


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


def _settle(span: Span, result: Any, is_async: bool) -> Any:
    """End `span` with `result`, or, for a stream, when the stream ends."""
    iterator = getattr(result, "_iterator", None)
    if iterator is not None and hasattr(result, "response"):  # openai's Stream / AsyncStream
        end = _StreamEnd(span)
        result._iterator = _follow_async(iterator, end) if is_async else _follow(iterator, end)
        weakref.finalize(result, end.finish)  # never iterated: the generator never ran
        return result
    span.output = _output_of(_parsed(result))
    span.end()
    return result


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
        return _settle(span, result, is_async=False)

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
        return _settle(span, result, is_async=True)

    return call


def instrument_openai() -> None:
    """Patch the openai SDK (idempotent, thread-safe; see the module's docstring)."""
    with _lock:
        if _originals:
            return
        for module_name, class_name, name, kept in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name)
            original = cls.__dict__["create"]
            is_async = class_name.startswith("Async")
            wrapper = (_async_wrapper if is_async else _sync_wrapper)(name, kept)
            setattr(cls, "create", wrapt.FunctionWrapper(original, wrapper))  # noqa: B010
            _originals.append((cls, original))


def uninstrument_openai() -> None:
    """Undo `instrument_openai()`."""
    with _lock:
        for cls, original in _originals:
            setattr(cls, "create", original)  # noqa: B010
        _originals.clear()
