"""The `openai` SDK: calls made under an active span are traced (`instrument_openai()`).

Patched: the `create` methods of chat completions, responses and
embeddings, and `chat.completions.parse`, sync and async — on the classes,
so clients made before instrumenting are covered. `with_raw_response` /
`with_streaming_response` call the method as it was when they were first
used on a client: used before instrumenting, they are not traced (openai
keeps them per client). What a call records is `_openai_calls`': its own LLM
span, or, to a configured LiteLLM proxy, a client span the proxy's LLM span
nests under. A stream's span ends when the stream is exhausted, closed, or
dropped unfinished (then marked `stream_completed: False`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import wrapt

from tracekit import _hooks
from tracekit.integrations._openai_calls import keep_open_for_stream, settle, start

__all__ = ["instrument_openai", "uninstrument_openai"]

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"

# (module, class, method, the kind of call its span is named after)
_TARGETS: tuple[tuple[str, str, str, str], ...] = tuple(
    (module, cls, method, kind)
    for module, classes, methods, kind in (
        (_CHAT, ("Completions", "AsyncCompletions"), ("create", "parse"), "chat.completions"),
        (_RESPONSES, ("Responses", "AsyncResponses"), ("create",), "responses"),
        (_EMBEDDINGS, ("Embeddings", "AsyncEmbeddings"), ("create",), "embeddings"),
    )
    for cls in classes
    for method in methods
)

_lock = threading.Lock()
_originals: list[tuple[type, str, Any]] = []


def _sync_wrapper(kind: str) -> Callable[..., Any]:
    def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        span = start(instance, kind, kwargs)
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            span.fail(exc)
            raise
        settle(span, kind, result, is_async=False)
        return result

    return call


def _async_wrapper(kind: str) -> Callable[..., Any]:
    async def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        span = start(instance, kind, kwargs)
        if span is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            span.fail(exc)
            raise
        settle(span, kind, result, is_async=True)
        return result

    return call


def instrument_openai() -> None:
    """Patch the openai SDK (idempotent, thread-safe; see the module's docstring)."""
    with _lock:
        if _originals:
            return
        for module_name, class_name, method, kind in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name)
            original = cls.__dict__.get(method)
            if original is None:  # an older openai without it
                continue
            is_async = class_name.startswith("Async")
            wrapper = (_async_wrapper if is_async else _sync_wrapper)(kind)
            setattr(cls, method, wrapt.FunctionWrapper(original, wrapper))
            _originals.append((cls, method, original))
        _hooks.add("end_with_result", keep_open_for_stream)


def uninstrument_openai() -> None:
    """Undo `instrument_openai()`."""
    with _lock:
        for cls, method, original in _originals:
            setattr(cls, method, original)
        _originals.clear()
        _hooks.remove("end_with_result", keep_open_for_stream)
