"""One LiteLLM call as tracekit follows it: from LiteLLM's setup to its result.

A `Call` is made when LiteLLM sets the call up, in the caller's context, so
its LLM span's parent is the span active there, wherever a stream is
consumed later. The LLM span is ended — or, when LiteLLM's own Opik callback
logs successes, dropped — exactly once, by whichever comes first: the result,
the failure, the end of the stream, or the call being given up (cancelled,
or a stream abandoned). Nothing here imports litellm.
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from time import time_ns
from typing import Any
from urllib.parse import urlsplit

from tracekit._context import active_span
from tracekit._inputs import snapshot
from tracekit._log import log_once
from tracekit._pipeline import emit
from tracekit._redact import REDACTED, Redactor, default_redactor, register_secret
from tracekit._span import Span, SpanType

__all__ = [
    "Call",
    "LLMCallInterrupted",
    "LLMSpan",
    "ResultFacts",
    "awaiting_opik",
    "begin",
    "claim_for_callback",
    "live_calls",
]

# Arguments recorded as the LLM span's input, and as its model parameters.
# Everything else (api_key, api_base, credentials, headers, ...) is never read.
INPUT_ARGUMENTS = frozenset(("messages", "prompt", "input", "query", "documents", "instructions"))
MODEL_PARAMETERS = frozenset(
    (
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "n",
        "stop",
        "stream",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tool_choice",
        "tools",
        "reasoning_effort",
        "size",
        "quality",
        "top_n",
        "dimensions",
    )
)


_secret_keys = Redactor()


Describe = Callable[["LLMSpan"], None]
# Reads a stream's chunks (as far as they got) into its span.
DescribeStream = Callable[["LLMSpan", list[Any]], None]


def _described(field: str) -> Any:
    """A field of `LLMSpan` that is filled from the call's result when first read."""
    slot = Span.__dict__[field]

    def read(span: LLMSpan) -> Any:
        span.describe_now()
        try:
            return slot.__get__(span, Span)
        except AttributeError:  # never set: Span leaves such fields empty
            return None

    # Written only by tracekit itself (an LLM span is never the current span)
    # before the result is described, so a write needs no settling first.
    return property(read, slot.__set__, doc=f"The LLM call's {field}.")


class LLMSpan(Span):
    """An LLM call's span.

    Its error text never shows the call's credentials: provider errors
    sometimes quote the API key they rejected. The exporter scrubs every span
    of every known secret; this span also hides them from in-process readers
    (`tracekit.testing`) of its `error_info`.

    What the result says (output, usage, cost, provider) is read from it only
    when first needed, normally on the export thread: the caller's path keeps
    a reference, not a description.
    """

    __slots__ = ("_describe", "secret_values")

    secret_values: tuple[str, ...]

    def __init__(self, name: str, parent: Span | None, type: SpanType = "llm") -> None:
        self._describe: Describe | None = None
        super().__init__(name, type, parent, tags=("litellm",))

    def describe_later(self, describe: Describe) -> None:
        """Fill the span from the result with `describe(span)` when it is first read."""
        self._describe = describe

    def describe_now(self) -> None:
        describe = self._describe
        if describe is None:
            return
        self._describe = None
        try:
            describe(self)
        except Exception:
            log_once("llm:describe", "tracekit: could not read an LLM call's result")

    output = _described("output")
    usage = _described("usage")
    model = _described("model")
    provider = _described("provider")
    total_cost = _described("total_cost")

    @property
    def error_info(self) -> dict[str, str] | None:
        info = super().error_info
        if info is None:
            return info
        scrub = default_redactor().scrub
        for key in ("message", "traceback"):
            text = info[key]
            for secret in self.secret_values:
                text = text.replace(secret, REDACTED)
            info[key] = scrub(text)
        return info


_AUTH_SCHEMES = ("bearer ", "basic ", "token ", "apikey ", "key ")
_URL_ARGUMENTS = frozenset(("api_base", "base_url", "proxy", "http_proxy", "https_proxy"))


def _userinfo_secrets(url: str) -> list[str]:
    if "@" not in url:
        return []
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    return [part for part in (password, user) if part]


_secret_names: dict[str, bool] = {}


def _is_secret_name(key: str) -> bool:
    """`Redactor.is_secret`, remembered: the same few argument names come every call."""
    known = _secret_names.get(key)
    if known is None:
        if len(_secret_names) > 4096:
            _secret_names.clear()
        known = _secret_names[key] = _secret_keys.is_secret(key)
    return known


def _secret_values(kwargs: Mapping[str, Any], depth: int = 0) -> tuple[str, ...]:
    """The call's credentials: values of secret-named arguments and headers, URL userinfo.

    Each is registered with the redactor, so it is scrubbed from every span
    (the enclosing spans' `error_info` quotes it too), not only this call's.
    """
    found: list[str] = []
    for key, value in kwargs.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, str):
            if len(value) < 6:
                continue
            if _is_secret_name(key):
                found.append(value)
                scheme, _, token = value.partition(" ")
                if token and f"{scheme.lower()} " in _AUTH_SCHEMES and len(token) >= 6:
                    found.append(token.strip())
            elif key in _URL_ARGUMENTS:
                found.extend(_userinfo_secrets(value))
        elif (
            depth < 2
            and (key.endswith("headers") or key in ("litellm_params", "credentials"))
            and isinstance(value, Mapping)
        ):
            found.extend(_secret_values(value, depth + 1))
    for value in found:
        register_secret(value)
    return tuple(found)


class LLMCallInterrupted(Exception):
    """Recorded on an LLM span whose call ended without a result or an error.

    That happens when the call is cancelled (asyncio or trio), interrupted
    (KeyboardInterrupt), or its coroutine is dropped before it finishes.
    """


_lock = threading.Lock()
# Calls whose LLM span has not ended yet, by litellm_call_id (oldest first).
live_calls: dict[str, Call] = {}
# Beyond this many open calls the oldest is given up: LiteLLM keeping calls
# alive forever must not grow memory without bound.
MAX_LIVE_CALLS = 10_000
# Successful calls LiteLLM's Opik callback has yet to log, by litellm_call_id.
awaiting_opik: dict[str, Call] = {}
# Calls tracekit logged itself because that callback could not: the callback
# skips them if it runs after all. Bounded: a callback that never runs leaves
# its id here until newer ones push it out.
_taken_over: OrderedDict[str, None] = OrderedDict()
# Calls the callback logged before tracekit saw them end: LiteLLM logs a
# stream's success as its last chunk goes out, before the consumer's next
# `__next__` tells tracekit. Bounded likewise.
_logged_early: OrderedDict[str, None] = OrderedDict()
_MAX_REMEMBERED = 10_000
# How many of the callback's logging calls are running now.
_callback_busy = 0
# Notified whenever an awaited call is logged, by either side.
opik_settled = threading.Condition(_lock)
# How often the loop watcher looks for closed event loops.
LOOP_CHECK_SECONDS = 0.02
_loop_watcher: threading.Thread | None = None


class Call:
    """A LiteLLM call in flight, and the spans that wait for its end."""

    __slots__ = (
        "call_id",
        "chunks",
        "describe_stream",
        "done",
        "end_ns",
        "kind",
        "last_chunk_ns",
        "logged_by_opik",
        "loop",
        "owners",
        "span",
        "stream",
        "watchers",
    )

    def __init__(self, call_id: str, kind: str, span: LLMSpan, logged_by_opik: bool) -> None:
        self.call_id = call_id
        self.kind = kind
        self.span = span
        self.logged_by_opik = logged_by_opik
        self.done = False
        self.stream = False  # True once LiteLLM returned a stream
        # Weak references whose death means the call was given up (see `watch`).
        self.watchers: list[weakref.ref[Any]] = []
        self.chunks: list[Any] | None = None
        self.describe_stream: DescribeStream | None = None
        self.last_chunk_ns: int | None = None
        # When the result (or the stream's last chunk) reached the caller.
        self.end_ns: int | None = None
        # The event loop whose task LiteLLM's async success callback runs on.
        self.loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        # Tracked calls that returned this call's stream: (span, capture_output).
        self.owners: list[tuple[Span, bool]] = []

    def watch(self, obj: Any) -> None:
        """Give the call up if `obj` (its LiteLLM logging object, its stream) dies first.

        A cancelled call and a stream dropped unread end that way: no LiteLLM
        callback ever reports them. The references live on this call, which
        `live_calls` keeps until it ends, so they cost nothing afterwards.
        """
        self.watchers.append(weakref.ref(obj, self._on_watched_death))

    def _on_watched_death(self, _: weakref.ref[Any]) -> None:
        self.give_up()

    def _claim(self) -> bool:
        """True for the one caller that gets to end this call."""
        with _lock:
            if self.done:
                return False
            self.done = True
            live_calls.pop(self.call_id, None)
        self.watchers.clear()
        return True

    def succeed(self, result: Any, describe: Describe) -> None:
        """The call returned `result` (not a stream) to the caller just now."""
        end_ns = time_ns()
        if not self._claim():
            return
        self.end_ns = end_ns
        self.span.describe_later(describe)
        if self.logged_by_opik:
            self._await_opik()
        else:
            self._end_llm_span(end_ns)

    def fail(self, error: BaseException) -> None:
        """The call, or its stream, raised `error`; logged by tracekit in every setup."""
        if not self._claim():
            return
        self.span.fail(error)
        text = self._streamed_text()
        for owner, capture_output in self.owners:
            if capture_output and text is not None and not owner._output_fixed:
                owner.output = text
            owner.fail(error)

    def finish_stream(self) -> None:
        """The consumer read the stream to its end."""
        if not self._claim():
            return
        self.end_ns = self.last_chunk_ns or time_ns()
        self._describe_stream_later()
        if self.logged_by_opik:
            self._await_opik()
        else:
            self._end_llm_span(self.end_ns)
        if self.owners:
            self._end_owners(self._streamed_text(), completed=True)

    def give_up(self) -> None:
        """The call ended without a result: a stream abandoned, or a call cancelled.

        LiteLLM's own callbacks log neither, so tracekit logs the span in every setup.
        """
        if not self._claim():
            return
        if self.stream:
            text = self._streamed_text()
            if self.describe_stream is not None:  # what was read of it
                self._describe_stream_later()
            else:
                self.span.output = assistant_message(text)
            self.span.metadata = {**(self.span.metadata or {}), "stream_completed": False}
            self._end_llm_span(self.last_chunk_ns)
            self._end_owners(text, completed=False)
        else:
            self.span.fail(LLMCallInterrupted("the LiteLLM call ended without a result"))

    def _describe_stream_later(self) -> None:
        describe = self.describe_stream
        if describe is None:
            return
        chunks = list(self.chunks or ())  # as they are now: the caller may clear the list
        self.span.describe_later(lambda span: describe(span, chunks))

    def _await_opik(self) -> None:
        """LiteLLM's Opik callback should log this success: keep the span in case it cannot."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a sync call: its callback runs on LiteLLM's threads
            loop = None
        with _lock:
            if self.call_id in _logged_early:  # the callback has logged it already
                del _logged_early[self.call_id]
                return
            awaiting_opik[self.call_id] = self
            if loop is not None:
                self.loop = weakref.ref(loop)
        if loop is not None:
            _watch_loops()

    def take_over(self) -> None:
        """Log this success now, as tracekit: LiteLLM's Opik callback cannot any more."""
        with opik_settled:
            if awaiting_opik.pop(self.call_id, None) is None:
                return  # the callback got to it first
            _remember(_taken_over, self.call_id)
            opik_settled.notify_all()
        self._end_llm_span(self.end_ns)

    def _callback_cannot_run(self, flushing_loop: asyncio.AbstractEventLoop | None) -> bool:
        """Can the callback no longer log this call (or not while `flushing_loop` blocks)?"""
        if self.loop is None:
            return False
        loop = self.loop()
        return loop is None or loop.is_closed() or loop is flushing_loop

    def _end_llm_span(self, end_ns: int | None) -> None:
        span = self.span
        if end_ns is not None:
            span._end_ns = max(end_ns, span._start_ns)
            emit(span)
        else:
            span.end()

    def _end_owners(self, text: str | None, completed: bool) -> None:
        for owner, capture_output in self.owners:
            if capture_output and not owner._output_fixed:
                owner.output = text
            if not completed:
                owner.metadata = {**(owner.metadata or {}), "stream_completed": False}
            owner.end()

    def _streamed_text(self) -> str | None:
        chunks = self.chunks
        if chunks is None:
            return None
        parts: list[str] = []
        for chunk in list(chunks):
            try:
                content = chunk.choices[0].delta.content
            except (AttributeError, IndexError, TypeError):
                continue
            if isinstance(content, str):
                parts.append(content)
        return "".join(parts)


def _remember(ids: OrderedDict[str, None], call_id: str) -> None:
    ids[call_id] = None
    if len(ids) > _MAX_REMEMBERED:
        ids.popitem(last=False)


def _watch_loops() -> None:
    """Start the thread that notices event loops closing on awaited callbacks."""
    global _loop_watcher
    with _lock:
        if _loop_watcher is not None and _loop_watcher.is_alive():
            return
        _loop_watcher = threading.Thread(
            target=_take_over_from_closed_loops, name="tracekit-litellm-loops", daemon=True
        )
    _loop_watcher.start()


def _take_over_from_closed_loops() -> None:
    """While successes wait on an event loop's callback task: log those whose loop closed.

    LiteLLM runs its async success callbacks as tasks on the caller's loop;
    `asyncio.run` returning closes that loop with them still queued. Polled,
    because an event loop tells no one it closes; the thread ends when nothing waits.
    """
    while True:
        with _lock:
            waiting = [call for call in awaiting_opik.values() if call.loop is not None]
        if not waiting:
            return
        for call in waiting:
            if call._callback_cannot_run(None):
                call.take_over()
        threading.Event().wait(LOOP_CHECK_SECONDS)


def claim_for_callback(call_id: object) -> tuple[bool, int | None]:
    """LiteLLM's Opik callback is about to log `call_id`: may it, and when did the call end?

    False when tracekit already logged that call itself. The end is when the
    result (a stream's last chunk) reached the caller, if tracekit knows it:
    LiteLLM stamps a stream's end later, when its logging thread gets to it.
    Pair a True with `callback_done()` once the callback has handed the span
    to the opik client.
    """
    global _callback_busy
    if not isinstance(call_id, str):
        return True, None
    with opik_settled:
        if call_id in _taken_over:
            del _taken_over[call_id]
            return False, None
        call = awaiting_opik.pop(call_id, None)
        if call is None:
            _remember(_logged_early, call_id)
            call = live_calls.get(call_id)
        _callback_busy += 1
    return True, None if call is None else (call.end_ns or call.last_chunk_ns)


def callback_done() -> None:
    """The callback's logging call that `claim_for_callback` allowed has returned."""
    global _callback_busy
    with opik_settled:
        _callback_busy -= 1
        opik_settled.notify_all()


def take_over_unrunnable() -> None:
    """Log the awaited successes the callback can no longer log, now, as tracekit.

    Those whose event loop closed, or is the loop this very thread blocks.
    """
    try:
        flushing_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        flushing_loop = None
    with _lock:
        waiting = list(awaiting_opik.values())
    for call in waiting:
        if call._callback_cannot_run(flushing_loop):
            call.take_over()


def settle_awaited_calls(timeout: float) -> None:
    """Within `timeout`: every awaited success logged, by the callback or by tracekit.

    The callback gets until the deadline for those it can still log; tracekit
    logs the others at once, and what is left at the deadline.
    """
    take_over_unrunnable()
    with opik_settled:
        opik_settled.wait_for(lambda: not awaiting_opik and not _callback_busy, timeout)
        left = list(awaiting_opik.values())
    for call in left:
        call.take_over()


def begin(
    call_id: str,
    kind: str,
    kwargs: Mapping[str, Any],
    logged_by_opik: bool,
    proxied: bool = False,
) -> Call | None:
    """Open the LLM span of a call LiteLLM is setting up, under the active span.

    `kind` names the call whether it is made sync or async (`completion` for
    `acompletion` too), so spans of the same kind of call share one name.
    A `proxied` call goes through a LiteLLM proxy, which logs the LLM span:
    its client side is a `general` span (the proxy's LLM span nests under
    it), without usage or cost (they are the proxy's span's), and LiteLLM's
    own Opik callback on the client does not log it.
    """
    try:
        if proxied:
            span = LLMSpan(f"litellm_proxy.{kind}", active_span.get(), "general")
            with opik_settled:
                _remember(_taken_over, call_id)  # the proxy logs the LLM span
        else:
            span = LLMSpan(f"litellm.{kind}", active_span.get())
        span.secret_values = _secret_values(kwargs)
        span.model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else None
        keys = kwargs.keys()
        # Copied: chat code often appends the reply to the same list, or edits
        # a message, right after the call.
        span.input = {
            k: snapshot(v) for k in keys & INPUT_ARGUMENTS if (v := kwargs[k]) is not None
        }
        parameters = {k: kwargs[k] for k in keys & MODEL_PARAMETERS if kwargs[k] is not None}
        if parameters:
            span.metadata = {**(span.metadata or {}), "model_parameters": parameters}
        call = Call(call_id, kind, span, logged_by_opik)
        with _lock:
            live_calls[call_id] = call
            oldest = next(iter(live_calls.values())) if len(live_calls) > MAX_LIVE_CALLS else None
        if oldest is not None:
            log_once(
                "litellm:too-many",
                "tracekit: over %d LiteLLM calls open; giving up the oldest",
                MAX_LIVE_CALLS,
                exc_info=False,
            )
            oldest.give_up()
        return call
    except Exception:
        log_once("litellm:begin", "tracekit: could not open the LLM span of a LiteLLM call")
        return None


def _flat_ints(value: Mapping[str, Any], prefix: str, into: dict[str, int]) -> None:
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if hasattr(item, "model_dump"):  # LiteLLM's token details objects
            item = item.model_dump()
        if isinstance(item, Mapping):
            _flat_ints(item, name, into)
        elif isinstance(item, int) and not isinstance(item, bool):
            into[name] = item


def usage_fields(usage: Any) -> dict[str, Any] | None:
    """A copy of a usage object's fields, cheap enough for the caller's path."""
    if usage is None:
        return None
    if type(usage) is dict:
        return dict(usage)
    fields = getattr(usage, "__dict__", None)  # pydantic models keep their fields there
    if isinstance(fields, dict):
        return dict(fields)
    if isinstance(usage, Mapping):
        return dict(usage)
    return {key: getattr(usage, key, None) for key in _TOKEN_COUNTS}


_TOKEN_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def opik_usage(usage: Any) -> dict[str, int] | None:
    """Token counts in Opik's format, as Opik's own integrations send them.

    `prompt_tokens`, `completion_tokens`, `total_tokens`, plus every integer
    of the provider's usage flattened under `original_usage.` (Opik keeps
    only integers).
    """
    original = usage_fields(usage)
    if original is None:
        return None
    counts: dict[str, int] = {
        key: value
        for key in _TOKEN_COUNTS
        if isinstance(value := original.get(key), int) and not isinstance(value, bool)
    }
    _flat_ints(original, "original_usage", counts)
    return counts or None


def assistant_message(text: str | None) -> dict[str, Any] | None:
    """The output of a chat call whose reply is `text` (a stream's, say)."""
    return None if text is None else {"role": "assistant", "content": text}


def _output_of(result: Any) -> Any:
    choices = getattr(result, "choices", None)
    if choices:
        first = choices[0]
        message = getattr(first, "message", None)
        if message is not None:
            output: dict[str, Any] = {"role": getattr(message, "role", "assistant")}
            output["content"] = getattr(message, "content", None)
            tool_calls = getattr(message, "tool_calls", None)
            if tool_calls:
                output["tool_calls"] = [
                    tc.model_dump() if hasattr(tc, "model_dump") else tc for tc in tool_calls
                ]
            return output
        return getattr(first, "text", None)
    data = getattr(result, "data", None)
    if isinstance(data, list):  # embeddings, images: the size, not the payload
        return {"items": len(data)}
    output_text = getattr(result, "output_text", None)  # responses API
    if isinstance(output_text, str):
        return output_text
    results = getattr(result, "results", None)  # rerank
    if isinstance(results, list):
        return results
    text = getattr(result, "text", None)  # transcription
    return text if isinstance(text, str) else None


def _hidden_params(result: Any) -> Any:
    """LiteLLM's `_hidden_params` of a response (cost, provider): a dict or a `HiddenParams`."""
    private = getattr(result, "__pydantic_private__", None)  # faster than pydantic's getattr
    hidden = private.get("_hidden_params") if isinstance(private, dict) else None
    if hidden is None:
        hidden = getattr(result, "_hidden_params", None)
    return hidden if callable(getattr(hidden, "get", None)) else {}


def _finite_cost(cost: object) -> float | None:
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        return float(cost)
    return None


class ResultFacts:
    """What a call's result says, copied when it reaches the caller.

    Copied, because the caller owns the result and may change it right away
    (`response.choices[0].message.content = ...`); formatting waits for the
    export thread (`describe`).
    """

    __slots__ = ("cost", "model", "output", "provider", "usage")

    def __init__(self, result: Any, kind: str) -> None:
        model = getattr(result, "model", None)
        self.model = model if isinstance(model, str) and model else None
        output = _output_of(result)
        if kind == "text_completion" and isinstance(output, dict):
            output = output.get("content")  # LiteLLM answers it with a chat response
        self.output = output
        self.usage = usage_fields(getattr(result, "usage", None))
        hidden = _hidden_params(result)
        self.cost = _finite_cost(hidden.get("response_cost"))
        provider = hidden.get("custom_llm_provider")
        self.provider = provider if isinstance(provider, str) else None

    def describe(self, span: Span) -> None:
        """Fill the LLM span with these facts (usage in Opik's format)."""
        if self.model is not None:
            span.model = self.model
        span.output = self.output
        span.usage = opik_usage(self.usage)
        if self.cost is not None:
            span.total_cost = self.cost
        if self.provider is not None:
            span.provider = self.provider
