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

A program that never opens an opik span pays nothing for it: the
`choose_parent` hook, which every tracekit span would ask, is added only once
opik puts a span on its context stack (`@opik.track`, opik's other
integrations, its distributed headers), or at `install()` when one is open
there already. (An opik span opened before `install()` in another thread is
seen from the next opik span on.) Once added, it costs one `ContextVar` read
per span while no opik span is open.
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
# opik's span stack (a ContextVar holding a tuple), read directly: `top_span_data()`
# also walks the stack for finished spans, a few µs per tracekit span.
_storage = context_storage.get_current_context_instance()
_opik_spans: Any = getattr(_storage, "_spans_data_stack_context", None)
# (owner, attribute, original) for what `install()` patched to notice opik's first span.
_watches: list[tuple[Any, str, Any]] = []
_hooked = False  # is `choose_parent` on `_hooks.choose_parent`?


def _is_under(span: Span, opik_span_id: str) -> bool:
    """Was `span` opened inside the opik span `opik_span_id` (tracekit span innermost)?"""
    root = span._root or span
    return root._foreign and root._id == opik_span_id


def choose_parent(parent: Span | None) -> Span | None:
    """The innermost of the active tracekit span and the current `@opik.track` span."""
    try:
        if _opik_spans is not None and not _opik_spans.get():
            return parent  # no opik span here: the usual case, one ContextVar read
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


def _hook_parents() -> None:
    """opik has a span open: from now on tracekit spans ask it for their parent."""
    global _hooked
    with _lock:
        if _original is not None and not _hooked:
            _hooks.add("choose_parent", choose_parent)
            _hooked = True


def _on_opik_span(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Around opik's `add_span_data`: the first opik span adds the `choose_parent` hook."""
    if not _hooked:
        _hook_parents()
    return wrapped(*args, **kwargs)


def _watch_opik_spans() -> None:
    """Notice opik's first span, wherever it is pushed (under `_lock`)."""
    cls = type(_storage)
    _watches.append((cls, "add_span_data", cls.__dict__["add_span_data"]))
    wrapt.wrap_function_wrapper(cls, "add_span_data", _on_opik_span)
    # opik's module-level `add_span_data` was bound to the storage before the patch.
    _watches.append((context_storage, "add_span_data", context_storage.add_span_data))
    context_storage.add_span_data = _storage.add_span_data


def install() -> None:
    """Make tracekit and `@opik.track` spans nest under each other (once per user)."""
    global _original, _users, _hooked
    with _lock:
        _users += 1
        if _original is None:
            _original = span_creation_handler.__dict__["create_span_respecting_context"]
            wrapt.wrap_function_wrapper(
                span_creation_handler, "create_span_respecting_context", _create_span
            )
            try:
                _watch_opik_spans()
            except Exception:  # another opik: ask it on every span, as before
                log_once("opik:watch", "tracekit: could not watch opik's span stack")
                _watches.clear()
                _hooks.add("choose_parent", choose_parent)
                _hooked = True
    if _opik_spans is None or _opik_spans.get():  # an opik span is open here already
        _hook_parents()
    # opik (and LiteLLM) registered exit hooks of their own: tracekit's must
    # run first, while the opik client and LiteLLM's callbacks can still deliver.
    _shutdown.run_exit_hook_first()


def uninstall() -> None:
    """Undo `install()` once its last user is gone."""
    global _original, _users, _hooked
    with _lock:
        _users = max(_users - 1, 0)
        if _original is None or _users:
            return
        span_creation_handler.create_span_respecting_context = _original
        _original = None
        while _watches:
            owner, name, original = _watches.pop()
            setattr(owner, name, original)
        _hooks.remove("choose_parent", choose_parent)
        _hooked = False
