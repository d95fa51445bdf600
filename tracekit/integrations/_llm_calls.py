"""One LiteLLM call as tracekit follows it: from LiteLLM's setup to its result.

A `Call` is made when LiteLLM sets the call up, in the caller's context, so
its LLM span's parent is the span active there, wherever a stream is
consumed later. The LLM span is ended — or, when LiteLLM's own Opik callback
logs successes, dropped — exactly once, by whichever comes first: the result,
the failure, the end of the stream, or the call being given up (cancelled,
or a stream abandoned). Nothing here imports litellm.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tracekit._context import active_span
from tracekit._log import log_once
from tracekit._pipeline import emit
from tracekit._redact import REDACTED, Redactor, default_redactor, register_secret
from tracekit._span import Span

__all__ = ["Call", "LLMCallInterrupted", "awaiting_opik", "begin", "live_calls"]

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


class LLMSpan(Span):
    """An LLM call's span: its error text never shows the call's credentials.

    Provider errors sometimes quote the API key they rejected. The exporter
    scrubs every span of every known secret; this span also hides them from
    in-process readers (`tracekit.testing`) of its `error_info`.
    """

    __slots__ = ("secret_values",)

    secret_values: tuple[str, ...]

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
            if _secret_keys.is_secret(key):
                found.append(value)
                scheme, _, token = value.partition(" ")
                if token and f"{scheme.lower()} " in _AUTH_SCHEMES and len(token) >= 6:
                    found.append(token.strip())
            elif key in _URL_ARGUMENTS:
                found.extend(_userinfo_secrets(value))
        elif (
            isinstance(value, Mapping)
            and depth < 2
            and (key.endswith("headers") or key in ("litellm_params", "credentials"))
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
# Notified when one is logged, so a flush can wait for them all.
awaiting_opik: dict[str, Call] = {}
opik_logged = threading.Condition(_lock)


class Call:
    """A LiteLLM call in flight, and the spans that wait for its end."""

    __slots__ = (
        "call_id",
        "chunks",
        "done",
        "last_chunk_ns",
        "logged_by_opik",
        "owners",
        "span",
        "stream",
        "watchers",
    )

    def __init__(self, call_id: str, span: Span, logged_by_opik: bool) -> None:
        self.call_id = call_id
        self.span = span
        self.logged_by_opik = logged_by_opik
        self.done = False
        self.stream = False  # True once LiteLLM returned a stream
        # Weak references whose death means the call was given up (see `watch`).
        self.watchers: list[weakref.ref[Any]] = []
        self.chunks: list[Any] | None = None
        self.last_chunk_ns: int | None = None
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

    def succeed(self, result: Any) -> None:
        """The call returned `result` (not a stream): the span ends now."""
        if not self._claim():
            return
        describe_result(self.span, result)
        if self.logged_by_opik:
            self._await_opik()
        else:
            self.span.end()

    def fail(self, error: BaseException) -> None:
        """The call, or its stream, raised `error`; logged by tracekit in every setup."""
        if not self._claim():
            return
        self.span.fail(error)
        text = self._streamed_text()
        for owner, capture_output in self.owners:
            if capture_output and text is not None:
                owner.output = text
            owner.fail(error)

    def finish_stream(self, usage: Mapping[str, Any] | None, cost: float | None) -> None:
        """The consumer read the stream to its end."""
        if not self._claim():
            return
        text = self._streamed_text()
        self.span.update(output=text, usage=usage, total_cost=cost)
        if self.logged_by_opik:
            self.span._end_ns = self.last_chunk_ns  # kept in case the callback never logs it
            self._await_opik()
        else:
            self._end_llm_span(self.last_chunk_ns)
        self._end_owners(text, completed=True)

    def _await_opik(self) -> None:
        """LiteLLM's Opik callback will log this success: keep the span only as a fallback."""
        with _lock:
            awaiting_opik[self.call_id] = self

    def log_unlogged_success(self) -> None:
        """The Opik callback never logged this success (its event was lost): tracekit does."""
        self._end_llm_span(self.span._end_ns)

    def give_up(self) -> None:
        """The call ended without a result: a stream abandoned, or a call cancelled.

        LiteLLM's own callbacks log neither, so tracekit logs the span in every setup.
        """
        if not self._claim():
            return
        if self.stream:
            text = self._streamed_text()
            self.span.update(output=text, metadata={"stream_completed": False})
            self._end_llm_span(self.last_chunk_ns)
            self._end_owners(text, completed=False)
        else:
            self.span.fail(LLMCallInterrupted("the LiteLLM call ended without a result"))

    def _end_llm_span(self, end_ns: int | None) -> None:
        span = self.span
        if end_ns is not None:
            span._end_ns = max(end_ns, span._start_ns)
            emit(span)
        else:
            span.end()

    def _end_owners(self, text: str | None, completed: bool) -> None:
        for owner, capture_output in self.owners:
            if capture_output:
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


def opik_callback_logged(call_id: object) -> None:
    """LiteLLM's Opik callback has logged the call `call_id`."""
    if not isinstance(call_id, str):
        return
    with opik_logged:
        if awaiting_opik.pop(call_id, None) is not None:
            opik_logged.notify_all()


def wait_for_opik_callback(timeout: float) -> bool:
    """Wait until LiteLLM's Opik callback logged every success it was handed."""
    with opik_logged:
        return opik_logged.wait_for(lambda: not awaiting_opik, timeout)


def begin(
    call_id: str, call_type: str, kwargs: Mapping[str, Any], logged_by_opik: bool
) -> Call | None:
    """Open the LLM span of a call LiteLLM is setting up, under the active span."""
    try:
        span = LLMSpan(f"litellm.{call_type}", "llm", active_span.get())
        span.secret_values = _secret_values(kwargs)
        span.model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else None
        keys = kwargs.keys()
        # A shallow copy: chat code often appends the reply to the same list later.
        span.input = {
            k: list(v) if isinstance(v, list) else v
            for k in keys & INPUT_ARGUMENTS
            if (v := kwargs[k]) is not None
        }
        parameters = {k: kwargs[k] for k in keys & MODEL_PARAMETERS if kwargs[k] is not None}
        if parameters:
            span.metadata = {**(span.metadata or {}), "model_parameters": parameters}
        call = Call(call_id, span, logged_by_opik)
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


def _usage_dict(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        return dict(usage)
    counts = {
        key: getattr(usage, key, None)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    return {k: v for k, v in counts.items() if isinstance(v, int)} or None


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


def describe_result(span: Span, result: Any) -> None:
    """Fill the LLM span from a LiteLLM response object."""
    try:
        model = getattr(result, "model", None)
        if isinstance(model, str) and model:
            span.model = model
        span.output = _output_of(result)
        span.usage = _usage_dict(getattr(result, "usage", None))
        hidden = getattr(result, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if isinstance(cost, int | float):
            span.total_cost = float(cost)
        provider = hidden.get("custom_llm_provider")
        if isinstance(provider, str):
            span.provider = provider
    except Exception:
        log_once("litellm:describe", "tracekit: could not read a LiteLLM response")
