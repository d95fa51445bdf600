"""The `openai` SDK: its calls are traced (`instrument_openai()`).

Patched: the `create` methods of chat completions, responses and
embeddings, and their `parse`, sync and async — on the classes, so clients
made before instrumenting are covered. `with_raw_response` /
`with_streaming_response` call the method as it was when they were first
used on a client: used before instrumenting, they are not traced (openai
keeps them per client). What a call records is `_openai_calls`': its own LLM
span, or, to a configured LiteLLM proxy, a client span the proxy's LLM span
nests under; streams are `_openai_streams`'. Instrumenting also installs the
`@opik.track` interop when opik is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

import wrapt

from tracekit import _hooks
from tracekit.integrations._openai_calls import fail, settle, start
from tracekit.integrations._openai_streams import keep_open_for_stream

__all__ = ["instrument_openai", "uninstrument_openai"]

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"

# (module, class, method, the kind of call its span is named after)
_TARGETS: tuple[tuple[str, str, str, str], ...] = tuple(
    (module, cls, method, kind)
    for module, classes, methods, kind in (
        (_CHAT, ("Completions", "AsyncCompletions"), ("create", "parse"), "chat.completions"),
        (_RESPONSES, ("Responses", "AsyncResponses"), ("create", "parse"), "responses"),
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
            fail(span, instance, exc)
            raise
        settle(span, instance, kind, result)
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
            fail(span, instance, exc)
            raise
        settle(span, instance, kind, result)
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
        if _opik_installed():
            from tracekit.integrations import opik as opik_interop

            opik_interop.install()


def _opik_installed() -> bool:
    """Is `opik` importable? Then calls under `@opik.track` alone are attached too."""
    return importlib.util.find_spec("opik") is not None


def uninstrument_openai() -> None:
    """Undo `instrument_openai()`."""
    with _lock:
        for cls, method, original in _originals:
            setattr(cls, method, original)
        if _originals and _opik_installed():
            from tracekit.integrations import opik as opik_interop

            opik_interop.uninstall()
        _originals.clear()
        _hooks.remove("end_with_result", keep_open_for_stream)
