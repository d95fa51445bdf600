"""LiteLLM: every call made under an active span is attached to it, streams included.

`instrument_litellm()` patches these places (see `_HOOKS`), all looked up by
LiteLLM at call time, so functions imported before instrumenting are covered
too; all are found before any is patched (LiteLLM `SUPPORTED_VERSIONS`):

- `litellm.utils.function_setup`, which every entry point (`completion`,
  `acompletion`, `embedding`, `responses`, `image_generation`, `Router`, ...)
  calls in the caller's context: the call's `metadata["opik"]` gets
  `current_span_data`, `project_name`, `tags` and `thread_id`, and the call's
  LLM span is opened under the active span;
- `litellm.utils.update_response_metadata`, called with the result in the
  caller's flow, sync and async: the LLM span ends there — not in LiteLLM's
  async success callbacks, which are lost when an event loop closes first;
- `Logging.failure_handler`, called inline on every failure;
- `CustomStreamWrapper.__next__` / `__anext__` / `aclose`: a stream's span
  ends when the consumer gets its last chunk, and a stream dropped early is
  still logged (with `stream_completed: False`);
- `OpikLogger.log_success_event` / `async_log_success_event`: which
  successes LiteLLM's Opik callback logs, so that a success is logged once,
  by the callback or (when it cannot, see `_llm_calls.take_over_unrunnable`)
  by tracekit.

With LiteLLM's own Opik callback on and tracekit exporting to Opik, the
callback logs successful calls and tracekit only fills in the metadata;
failures, cancelled calls and abandoned streams, which that callback never
logs, are logged by tracekit.

Instrumenting also installs the `@opik.track` interop (`integrations/opik.py`),
so calls under `@opik.track` alone are attached too.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import math
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from time import time_ns as _time_ns
from typing import Any

import litellm
import wrapt

from tracekit import _config, _hooks, _pipeline, _shutdown
from tracekit._context import innermost_parent
from tracekit._inputs import snapshot
from tracekit._instrument import LiteLLMNotSupported
from tracekit._log import log_once
from tracekit._redact import Redactor
from tracekit._span import Span
from tracekit.integrations import _llm_calls, _llm_spans
from tracekit.integrations import opik as opik_interop
from tracekit.integrations._llm_calls import Call, begin, live_calls
from tracekit.integrations._llm_spans import LLMSpan, ResultFacts, assistant_message, finite_cost
from tracekit.integrations._proxy import ask_proxy_to_nest, proxy_can_nest

__all__ = [
    "SUPPORTED_VERSIONS",
    "LiteLLMNotSupported",
    "instrument_litellm",
    "uninstrument_litellm",
]

# The LiteLLM releases tracekit is tested with (`make test-litellm-versions`
# runs the LiteLLM tests on the oldest and the newest). opik accepts 1.79.2
# up; 1.79-1.80 lack `aclose` and the logging worker's flush at exit.
SUPPORTED_VERSIONS = ">=1.83.7,<1.106"

_lock = threading.Lock()
# (owner, attribute, original) for every patch, to restore exactly.
_patches: list[tuple[Any, str, Any]] = []
STATE_ATTRIBUTE = "_tracekit_call"


def _opik_callback_active() -> bool:
    """Is LiteLLM's own Opik callback going to log this call's success?"""
    for callbacks in (
        litellm.callbacks,
        litellm.success_callback,
        litellm._async_success_callback,
    ):
        for callback in callbacks:
            if callback == "opik" or type(callback).__name__ == "OpikLogger":
                return True
    return False


def _callback_logs_under_tracekit() -> bool:
    """With LiteLLM's Opik callback on: may it log successes under tracekit's spans?

    Only when tracekit's own spans go to Opik too: pointing the callback at a
    trace that never reaches Opik would leave its span an orphan there.
    """
    exporter = _config.exporter_name()
    if exporter == "opik":
        return True
    log_once(
        "litellm:callback-elsewhere",
        "tracekit: LiteLLM's Opik callback is on but tracekit exports to %r, not Opik: "
        "tracekit records LLM spans there under their parents, and the callback logs "
        "its own separate traces in Opik",
        exporter,
        exc_info=False,
    )
    return False


_kinds: dict[str, str] = {}


def _kind(call_type: str) -> str:
    """The kind of call, sync or async: `acompletion` → `completion`."""
    kind = _kinds.get(call_type)
    if kind is None:
        synchronous = call_type[1:]
        is_async = call_type.startswith("a") and callable(getattr(litellm, synchronous, None))
        kind = _kinds[call_type] = synchronous if is_async else call_type
    return kind


def _with_opik_metadata(kwargs: dict[str, Any], parent: Span) -> None:
    """Fill metadata["opik"] for LiteLLM's Opik callback; the caller's values win.

    The caller's dicts are copied, never changed.
    """
    metadata = kwargs.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    opik = dict(metadata.get("opik") or {})
    opik.setdefault("current_span_data", {"id": parent.id, "trace_id": parent.trace_id})
    project = parent.project_name or _config.default_project()
    if project:
        opik.setdefault("project_name", project)
    if parent.tags:
        opik.setdefault("tags", list(parent.tags))
    if parent.thread_id:
        opik.setdefault("thread_id", parent.thread_id)
    metadata["opik"] = opik
    kwargs["metadata"] = metadata


def _is_proxied(fields: Mapping[str, Any]) -> bool:
    """Does the call go to a LiteLLM proxy (`litellm_proxy/...`)?"""
    model = fields.get("model")
    return fields.get("custom_llm_provider") == "litellm_proxy" or (
        isinstance(model, str) and model.startswith("litellm_proxy/")
    )


def _begin_proxied(
    call_id: str, call_type: str, fields: Mapping[str, Any], kwargs: dict[str, Any]
) -> Call | None:
    """A call to a LiteLLM proxy under an active span: the proxy logs its LLM span under ours.

    With no active span nothing is done: the proxy logs the call as it would
    without tracekit (key-level metadata included).
    """
    if innermost_parent() is None:
        return None
    call = begin(call_id, call_type, fields, logged_by_opik=False, proxied=True)
    if call is not None:
        ask_proxy_to_nest(kwargs, call.span)
    return call


def _on_function_setup(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    call: Call | None = None
    call_id = kwargs.get("litellm_call_id")
    try:
        if isinstance(call_id, str) and _pipeline.enabled:
            call_type = _kind(args[0]) if args and isinstance(args[0], str) else "call"
            fields = kwargs
            if len(args) > 3:  # model (and messages) given positionally
                fields = {
                    "model": args[3],
                    **dict(zip(("messages",), args[4:5], strict=False)),
                    **kwargs,
                }
            # Not exporting to Opik, a proxied call is recorded like any other
            # LiteLLM call: its LLM span (tokens, cost) is then tracekit's.
            if _is_proxied(fields) and proxy_can_nest():
                call = _begin_proxied(call_id, call_type, fields, kwargs)
            else:
                callback_on = (
                    bool(
                        litellm.callbacks
                        or litellm.success_callback
                        or litellm._async_success_callback
                    )
                    and _opik_callback_active()
                )
                logged_by_opik = callback_on and _callback_logs_under_tracekit()
                call = begin(call_id, call_type, fields, logged_by_opik)
                parent = call.span._parent if call is not None else None
                if parent is not None and (logged_by_opik or not callback_on):
                    _with_opik_metadata(kwargs, parent)
    except Exception:
        log_once("litellm:setup", "tracekit: could not prepare a LiteLLM call")
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:  # LiteLLM refused the call before it started
        if call is not None:
            call.fail(exc)
        raise
    if call is not None:
        try:
            call.watch(result[0])  # its logging object outlives a normal end
        except Exception:
            log_once("litellm:finalize", "tracekit: could not watch a LiteLLM call's end")
    return result


def _call_of(logging_obj: Any) -> Call | None:
    call_id = getattr(logging_obj, "litellm_call_id", None)
    return live_calls.get(call_id) if isinstance(call_id, str) else None


def _on_response(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    returned = wrapped(*args, **kwargs)
    try:
        result = kwargs.get("result", args[0] if args else None)
        logging_obj = kwargs.get("logging_obj", args[1] if len(args) > 1 else None)
        call_id = getattr(logging_obj, "litellm_call_id", None)
        call = live_calls.get(call_id) if type(call_id) is str else None
        if call is not None:
            attributes = getattr(result, "__dict__", None)
            maybe_stream = isinstance(result, _stream_class) or (
                type(attributes) is dict and "completion_stream" in attributes
            )
            stream = _stream_of(result) if maybe_stream else None
            if stream is not None:
                call.stream = True
                call.chunks = stream.chunks
                call.describe_stream = _stream_description(stream, call.kind)
                setattr(stream, STATE_ATTRIBUTE, call)
                call.watch(stream)  # dropped unfinished: still logged
            else:  # LiteLLM calls this as the result comes back
                facts = _facts(result, call.kind)
                details = getattr(logging_obj, "model_call_details", None)  # (`_provider_of`)
                provider = details.get("custom_llm_provider") if type(details) is dict else None
                call.succeed(result, lambda span: _describe(span, facts, provider))
    except Exception:
        log_once("litellm:result", "tracekit: could not record a LiteLLM result")
    return returned


def _on_failure(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        call = _call_of(instance)
        error = kwargs.get("exception", args[0] if args else None)
        if call is not None and isinstance(error, BaseException):
            provider = _opik_provider_name(_provider_of(instance))
            if provider is not None and call.span.provider is None:
                call.span.provider = provider
            call.fail(error)
    except Exception:
        log_once("litellm:failure", "tracekit: could not record a LiteLLM failure")
    return wrapped(*args, **kwargs)


def _provider_of(logging_obj: Any) -> object:
    """The call's provider as LiteLLM names it internally."""
    details = getattr(logging_obj, "model_call_details", None)
    return details.get("custom_llm_provider") if isinstance(details, dict) else None


def _opik_provider_name(provider: object) -> str | None:
    """`provider` named as LiteLLM's Opik callback names it (`openai`, `google_ai`, ...)."""
    if not isinstance(provider, str):
        return None
    try:
        from litellm.integrations.opik.opik_payload_builder.extractors import (
            normalize_provider_name,
        )
    except ImportError:  # older LiteLLM: its own name
        return provider
    return normalize_provider_name(provider) or provider


def _hidden_params(result: Any) -> Any:
    """LiteLLM's `_hidden_params` of a response (cost, provider): a dict or a `HiddenParams`."""
    private = getattr(result, "__pydantic_private__", None)  # faster than pydantic's getattr
    hidden = private.get("_hidden_params") if type(private) is dict else None
    if type(hidden) is dict:
        return hidden
    if hidden is None:
        hidden = getattr(result, "_hidden_params", None)
    return hidden if callable(getattr(hidden, "get", None)) else {}


def _facts(result: Any, kind: str) -> ResultFacts:
    """What a LiteLLM result says, with the cost and provider LiteLLM hides in it.

    Pinned (`ResultFacts.pin`): read into the span on the export thread.
    """
    hidden = _hidden_params(result)
    provider = hidden.get("custom_llm_provider")
    cost = hidden.get("response_cost")
    return ResultFacts.pin(
        result,
        kind,
        cost=cost if type(cost) is float and math.isfinite(cost) else finite_cost(cost),
        provider=provider if isinstance(provider, str) else None,
    )


def _describe(span: LLMSpan, facts: ResultFacts, provider: object) -> None:
    facts.describe(span)
    named = _opik_provider_name(provider or span.provider)
    if named is not None:
        span.provider = named
    if span.type != "llm":  # a proxied call's client side: tokens and cost are the proxy's
        span.usage = span.total_cost = None


def _stream_of(result: Any) -> Any:
    """The `CustomStreamWrapper` a result is or wraps (`text_completion`'s stream wraps one).

    Asked of every LiteLLM result and every tracked call's return value: read
    from the instance's `__dict__`, because a missing attribute of a pydantic
    model (a `ModelResponse`) costs microseconds to look up.
    """
    if isinstance(result, _stream_class):
        return result
    attributes = getattr(result, "__dict__", None)
    inner = attributes.get("completion_stream") if type(attributes) is dict else None
    return inner if isinstance(inner, _stream_class) else None


def _chunk_text(chunk: Any) -> str:
    """A streamed chunk's text: a chat delta's content, or a text completion's text."""
    choices = getattr(chunk, "choices", None)
    if not choices:
        return ""
    first = choices[0]
    delta = getattr(first, "delta", None)
    text = getattr(delta, "content", None) if delta is not None else getattr(first, "text", None)
    return text if isinstance(text, str) else ""


def _stream_description(stream: Any, kind: str) -> _llm_calls.DescribeStream:
    """How to read a stream's chunks into its span, later, on the export thread.

    With LiteLLM's own assembly (`stream_chunk_builder`, the function its
    logging uses), so tokens and cost are what LiteLLM's standard logging
    payload reports. Holds neither the stream (a stream dropped unread still
    dies) nor the caller's messages (a copy: the caller may append the reply).
    """
    provider = getattr(stream, "custom_llm_provider", None)
    messages = snapshot(getattr(stream, "messages", None))

    def describe(span: LLMSpan, chunks: list[Any]) -> None:
        span.provider = _opik_provider_name(provider)
        if not chunks:
            span.output = "" if kind == "text_completion" else assistant_message("")
            return
        if span.type != "llm":  # a proxied call's client side: the text is all it shows
            text = "".join(_chunk_text(chunk) for chunk in chunks)
            span.output = text if kind == "text_completion" else assistant_message(text)
            return
        assembled = litellm.stream_chunk_builder(chunks=chunks, messages=messages)
        if assembled is None:
            return
        _describe(span, _facts(assembled, kind), provider)
        if span.type == "llm" and span.total_cost is None:
            try:
                span.total_cost = float(litellm.completion_cost(completion_response=assembled))
            except Exception:  # a model LiteLLM has no price for
                span.total_cost = None

    return describe


def _on_next(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        chunk = wrapped(*args, **kwargs)
    except StopIteration:
        call = instance.__dict__.get(STATE_ATTRIBUTE)
        if call is not None:
            call.finish_stream()
        raise
    except BaseException as exc:
        call = instance.__dict__.get(STATE_ATTRIBUTE)
        if call is not None:
            call.fail(exc)
        raise
    call = instance.__dict__.get(STATE_ATTRIBUTE)
    if call is not None:
        call.last_chunk_ns = _time_ns()
    return chunk


async def _on_anext(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        chunk = await wrapped(*args, **kwargs)
    except StopAsyncIteration:
        call = instance.__dict__.get(STATE_ATTRIBUTE)
        if call is not None:
            call.finish_stream()
        raise
    except BaseException as exc:
        call = instance.__dict__.get(STATE_ATTRIBUTE)
        if call is not None:
            if isinstance(exc, Exception):
                call.fail(exc)
            else:
                call.give_up(interrupted_by=exc)
        raise
    call = instance.__dict__.get(STATE_ATTRIBUTE)
    if call is not None:
        call.last_chunk_ns = _time_ns()
    return chunk


async def _on_aclose(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    call = instance.__dict__.get(STATE_ATTRIBUTE)
    if call is not None:
        call.give_up()
    return await wrapped(*args, **kwargs)


def _keep_open_for_stream(result: Any, span: Span, capture_output: bool) -> bool:
    """A tracked call that returns a LiteLLM stream ends with the stream.

    Asked of every tracked call's return value: most are no stream, told in C.
    """
    if not isinstance(result, _stream_class):
        attributes = getattr(result, "__dict__", None)
        if type(attributes) is not dict or "completion_stream" not in attributes:
            return False
    stream = _stream_of(result)
    if stream is None:
        return False
    call = stream.__dict__.get(STATE_ATTRIBUTE)
    if call is None or call.done:
        return False
    call.owners.append((span, capture_output))
    return True


def _drain_litellm(timeout: float) -> bool:
    """Push out what LiteLLM still holds for its callbacks (its Opik callback included).

    All of it within `timeout` seconds. True when every success handed to
    LiteLLM's Opik callback reached the opik client's backend, or was logged
    by tracekit instead.
    """
    deadline = _shutdown.Deadline(timeout)
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        # First what the callback can no longer log (its event loop closed).
        _llm_calls.take_over_unrunnable()
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop runs here: run what the worker still queues
            bound = getattr(GLOBAL_LOGGING_WORKER, "_bound_loop", None)
            flush_on_exit = getattr(GLOBAL_LOGGING_WORKER, "_flush_on_exit", None)
            idle = bound is None or bound.is_closed() or not bound.is_running()
            if idle and callable(flush_on_exit):
                flush_on_exit()
                asyncio.set_event_loop(None)
        # The callback gets half the time left; tracekit logs what it has not reached.
        _llm_calls.settle_awaited_calls(deadline.remaining() / 2)
        if _opik_callback_active():
            from opik.api_objects import opik_client

            return opik_client.get_client_cached().flush(timeout=deadline.remaining())  # type: ignore[arg-type]
        return True
    except Exception:
        log_once("litellm:drain", "tracekit: could not flush LiteLLM's pending callbacks")
        return False


def _settle_calls_at_exit(timeout: float) -> None:
    """At exit, after `_drain_litellm`: streams never finished are logged as given up,
    and successes LiteLLM's Opik callback never got to log are logged by tracekit."""
    for call in list(live_calls.values()):
        if call.stream:
            call.give_up()
    _llm_calls.settle_awaited_calls(0)  # whatever the callback has not logged yet


def _on_opik_logged(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Around OpikLogger.log_success_event: skip what tracekit logged itself already."""
    allowed, end_ns = _llm_calls.claim_for_callback(_event_call_id(args, kwargs))
    if not allowed:
        return None
    try:
        return wrapped(*args, **_ending_at(end_ns, kwargs))
    finally:
        _llm_calls.callback_done()


async def _on_opik_logged_async(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Around OpikLogger.async_log_success_event, likewise."""
    allowed, end_ns = _llm_calls.claim_for_callback(_event_call_id(args, kwargs))
    if not allowed:
        return None
    try:
        return await wrapped(*args, **_ending_at(end_ns, kwargs))
    finally:
        _llm_calls.callback_done()


def _ending_at(end_ns: int | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The callback's arguments with the call's own end time (in LiteLLM's kind of datetime)."""
    theirs = kwargs.get("end_time")
    if end_ns is None or not isinstance(theirs, datetime):
        return kwargs
    ours = datetime.fromtimestamp(end_ns / 1e9, theirs.tzinfo)  # naive local, like LiteLLM's
    return {**kwargs, "end_time": min(ours, theirs)}


def _event_call_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    event = kwargs.get("kwargs", args[0] if args else None)
    return event.get("litellm_call_id") if isinstance(event, dict) else None


# What instrumenting hooks into: (module, attribute path, wrapper, required).
# An optional hook that is missing only costs what it adds, with a warning.
_Hook = tuple[str, str, Callable[..., Any], bool]
_LOGGING = "litellm.litellm_core_utils.litellm_logging"
_STREAMS = "litellm.litellm_core_utils.streaming_handler"
_OPIK = "litellm.integrations.opik.opik"
_HOOKS: tuple[_Hook, ...] = (
    ("litellm.utils", "function_setup", _on_function_setup, True),
    ("litellm.utils", "update_response_metadata", _on_response, True),
    (_LOGGING, "Logging.failure_handler", _on_failure, True),
    (_STREAMS, "CustomStreamWrapper.__next__", _on_next, True),
    (_STREAMS, "CustomStreamWrapper.__anext__", _on_anext, True),
    (_STREAMS, "CustomStreamWrapper.aclose", _on_aclose, False),
    (_OPIK, "OpikLogger.log_success_event", _on_opik_logged, True),
    (_OPIK, "OpikLogger.async_log_success_event", _on_opik_logged_async, True),
)
# Used as they are: LiteLLM's own stream assembly and pricing.
_USED = ("stream_chunk_builder", "completion_cost", "logging_callback_manager")
_stream_class: type[Any] = type(None)  # CustomStreamWrapper, once resolved


def _credential_arguments() -> set[str]:
    """The installed LiteLLM's own names for credential arguments (with secret names)."""
    names: set[str] = set()
    try:
        from litellm.types.router import CredentialLiteLLMParams
        from litellm.types.utils import StandardCallbackDynamicParams

        names.update(CredentialLiteLLMParams.model_fields)
        names.update(StandardCallbackDynamicParams.__annotations__)
    except (ImportError, AttributeError):  # an older LiteLLM: tracekit's own list only
        return names
    redactor = Redactor()
    return {name for name in names if redactor.is_secret(name)}


def litellm_version() -> str:
    try:
        return importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def _resolve(module_name: str, path: str) -> tuple[Any, str] | None:
    """The object holding `path`'s last attribute in `module_name`, and its name."""
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
        if owner is None:
            return None
    found = name in owner.__dict__ if isinstance(owner, type) else hasattr(owner, name)
    return (owner, name) if found else None


def _resolve_hooks() -> list[tuple[Any, str, Callable[..., Any]]]:
    """Every hook's place, found before anything is patched; raise if one is missing."""
    places: list[tuple[Any, str, Callable[..., Any]]] = []
    missing: list[str] = []
    for module_name, path, wrapper, required in _HOOKS:
        place = _resolve(module_name, path)
        if place is not None:
            places.append((*place, wrapper))
        elif required:
            missing.append(f"{module_name}.{path}")
        else:
            log_once(
                f"litellm:optional:{path}",
                "tracekit: LiteLLM %s has no %s.%s; instrumenting without it",
                litellm_version(),
                module_name,
                path,
                exc_info=False,
            )
    missing += [f"litellm.{name}" for name in _USED if not hasattr(litellm, name)]
    if missing:
        raise LiteLLMNotSupported(
            f"tracekit.instrument_litellm(): LiteLLM {litellm_version()} has no "
            f"{', '.join(missing)}; nothing was patched. tracekit supports LiteLLM "
            f"{SUPPORTED_VERSIONS}."
        )
    return places


def instrument_litellm() -> None:
    """Attach every LiteLLM call made under an active span to it. Idempotent.

    Raises `LiteLLMNotSupported`, patching nothing, when the installed LiteLLM
    lacks a place tracekit must hook into.
    """
    global _stream_class
    with _lock:
        if _patches:
            return
        places = _resolve_hooks()
        for owner, name, wrapper in places:
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            wrapt.wrap_function_wrapper(owner, name, wrapper)
            _patches.append((owner, name, original))
            if name == "__next__":
                _stream_class = owner
        _llm_spans.add_credential_arguments(_credential_arguments())
        _hooks.add("end_with_result", _keep_open_for_stream)
        opik_interop.install()
        _llm_spans.logged_callers.add("litellm")
        _hooks.add("before_flush", _drain_litellm)
        _hooks.add("at_exit", _settle_calls_at_exit)


def uninstrument_litellm() -> None:
    """Undo `instrument_litellm()`: every patched attribute gets its original back."""
    with _lock:
        if _patches:
            opik_interop.uninstall()
            _llm_spans.logged_callers.discard("litellm")
        while _patches:
            owner, name, original = _patches.pop()
            setattr(owner, name, original)
        _hooks.remove("end_with_result", _keep_open_for_stream)
        _hooks.remove("before_flush", _drain_litellm)
        _hooks.remove("at_exit", _settle_calls_at_exit)
