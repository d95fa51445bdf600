"""Interop with Opik's own `@opik.track`: spans of either decorator nest under the other's.

- A tracekit span opened while an `@opik.track` span is the innermost one
  becomes its child (same Opik trace), through `_hooks.choose_parent`.
- An `@opik.track` span opened while a tracekit span is the innermost one
  becomes the tracekit span's child: opik's span creation is given the
  tracekit span as distributed-trace parent (opik 2.2's
  `span_creation_handler.create_span_respecting_context`).

Installed by `tracekit.instrument_litellm()` and `instrument_openai()`, so
LiteLLM and openai calls made under `@opik.track` alone are attached too; it
stays installed while either is.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

import wrapt
from opik import context_storage
from opik.decorator import span_creation_handler

from tracekit import _hooks, _shutdown
from tracekit._context import active_span
from tracekit._log import log_once
from tracekit._span import Span

__all__ = ["install", "uninstall"]

_lock = threading.Lock()
_original: Any = None
_users = 0  # how many instrumentations want it installed
_SIGNATURE = inspect.signature(span_creation_handler.create_span_respecting_context)


def _is_under(span: Span, opik_span_id: str) -> bool:
    """Was `span` opened inside the opik span `opik_span_id` (tracekit span innermost)?"""
    root = span._root or span
    return root._foreign and root._id == opik_span_id


def choose_parent(parent: Span | None) -> Span | None:
    """The innermost of the active tracekit span and the current `@opik.track` span."""
    try:
        top = context_storage.top_span_data()
        if top is None:
            return parent
        if parent is not None and (_is_under(parent, top.id) or top.trace_id != parent.trace_id):
            return parent
        return Span.foreign(top.id, top.trace_id, top.project_name, None)
    except Exception:
        log_once("opik:parent", "tracekit: could not read @opik.track's current span")
        return parent


def _create_span(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        bound = _SIGNATURE.bind(*args, **kwargs)
        active = active_span.get()
        if active is not None and bound.arguments.get("distributed_trace_headers") is None:
            storage = (
                bound.arguments.get("opik_context_storage")
                or context_storage.get_current_context_instance()
            )
            top = storage.top_span_data()
            innermost_is_tracekit = (top is None and storage.get_trace_data() is None) or (
                top is not None and _is_under(active, top.id)
            )
            if innermost_is_tracekit:
                bound.arguments["distributed_trace_headers"] = {
                    "opik_parent_span_id": active.id,
                    "opik_trace_id": active.trace_id,
                }
                start = bound.arguments["start_span_arguments"]
                if active.project_name and getattr(start, "project_name", None) is None:
                    start.project_name = active.project_name
                return wrapped(*bound.args, **bound.kwargs)
    except Exception:
        log_once("opik:nest", "tracekit: could not nest an @opik.track span")
    return wrapped(*args, **kwargs)


def install() -> None:
    """Make tracekit and `@opik.track` spans nest under each other (once per user)."""
    global _original, _users
    with _lock:
        _users += 1
        if _original is None:
            _original = span_creation_handler.__dict__["create_span_respecting_context"]
            wrapt.wrap_function_wrapper(
                span_creation_handler, "create_span_respecting_context", _create_span
            )
            _hooks.add("choose_parent", choose_parent)
    # opik (and LiteLLM) registered exit hooks of their own: tracekit's must
    # run first, while the opik client and LiteLLM's callbacks can still deliver.
    _shutdown.run_exit_hook_first()


def uninstall() -> None:
    """Undo `install()` once its last user is gone."""
    global _original, _users
    with _lock:
        _users = max(_users - 1, 0)
        if _original is None or _users:
            return
        span_creation_handler.create_span_respecting_context = _original
        _original = None
        _hooks.remove("choose_parent", choose_parent)
