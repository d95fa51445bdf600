"""One openai SDK call as tracekit records it: its span, from the call to its result.

To a configured LiteLLM proxy, the call's span is a `general` client span
and the proxy is asked to log the LLM span under it (`_proxy`). To any other
base URL (OpenAI, vLLM, a gateway), the call's span is tracekit's own LLM
span, in the shape of every LLM span (`_llm_spans`): model, messages,
output, usage, cost where LiteLLM's price list knows the model (`_prices`),
provider named as Opik's OpenAI integration names it; nothing is added to
such a request. Streams are `_openai_streams`'.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import openai

from tracekit import _config, _pipeline
from tracekit._context import innermost_parent
from tracekit._log import log_once
from tracekit.integrations._llm_spans import (
    LLMSpan,
    ResultFacts,
    logged_callers,
    open_llm_span,
    secret_values,
)
from tracekit.integrations._openai_streams import follow_stream
from tracekit.integrations._prices import cost_of
from tracekit.integrations._proxy import ask_proxy_to_nest, proxy_can_nest

__all__ = ["fail", "settle", "start"]

_CLIENTS = (openai.OpenAI, openai.AsyncOpenAI)
# The SDK's "argument not given" markers (`NOT_GIVEN`, `omit`): not the caller's values.
_OMITTED = tuple(t for t in (getattr(openai, "NotGiven", None), getattr(openai, "Omit", None)) if t)
_RAW = getattr(getattr(openai, "_legacy_response", None), "LegacyAPIResponse", type(None))

# A client's credentials, found again when its api_key changes: (api_key, secrets).
_client_secrets: weakref.WeakKeyDictionary[Any, tuple[object, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _provider(base_url: str) -> str | None:
    """`openai` for OpenAI's own API, else the base URL's host (as Opik's integration does)."""
    try:
        host = urlsplit(base_url).hostname
    except ValueError:
        return None
    return "openai" if host == "api.openai.com" else host


def _note_secrets(span: LLMSpan, client: Any) -> None:
    """Add the client's api_key and credential headers to the span's secrets (registered).

    Read at the call and again at its end: a key provider (`api_key=callable`)
    sets the key only as the request goes out, and a key may be rotated.
    """
    api_key = client.api_key
    known = _client_secrets.get(client)
    if known is None or known[0] != api_key:
        found = secret_values({"api_key": api_key, "headers": client.default_headers})
        known = (api_key, found)
        with contextlib.suppress(TypeError):  # not weakly referenceable: found again next time
            _client_secrets[client] = known
    new = [secret for secret in known[1] if secret not in span.secret_values]
    if new:
        span.secret_values += tuple(new)


# Modules between the caller and `start`: the SDK, tracekit's wrapper, wrapt.
_PASSED_THROUGH = ("openai.", "tracekit.", "wrapt.")


def _made_by_logged_caller() -> bool:
    """Is this SDK call made by a package whose calls are logged already (`logged_callers`)?

    Told by the first frame up the stack outside the SDK and tracekit: an
    async call's awaiting coroutines are on the stack too.
    """
    if not logged_callers:
        return False
    frame: FrameType | None = sys._getframe(2)
    for _ in range(32):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_PASSED_THROUGH):
            return module.partition(".")[0] in logged_callers
        frame = frame.f_back
    return False


def start(resource: Any, kind: str, kwargs: dict[str, Any]) -> LLMSpan | None:
    """The call's span (and, to a proxy, the request's metadata), or None: not traced.

    Not traced: tracing off; a client that is not an openai client (a test's
    stand-in); a client Opik's `track_openai` already logs, or a call made by
    LiteLLM while it is instrumented (one LLM span per call); a call to a
    proxy with no span to nest under (the proxy logs it as it would without
    tracekit). Any other call is traced, a call with no active span as a
    trace of its own.
    """
    try:
        client: Any = getattr(resource, "_client", None)
        # The class itself: a `MagicMock(spec=OpenAI)` claims to be an instance.
        if not _pipeline.enabled or not issubclass(type(client), _CLIENTS):
            return None
        if getattr(client, "opik_tracked", False) or _made_by_logged_caller():
            return None
        given = {k: v for k, v in kwargs.items() if not isinstance(v, _OMITTED)}
        base_url = str(client.base_url)
        name = f"openai.{kind}"
        # Exporting elsewhere than Opik, the proxy's span could not nest under
        # ours (`proxy_can_nest`): the call is then an LLM span of tracekit's.
        if _config.is_litellm_proxy(base_url) and proxy_can_nest():
            if innermost_parent() is None:
                return None
            for key in ("extra_body", "metadata"):
                if isinstance(kwargs.get(key), _OMITTED):
                    del kwargs[key]
            span = open_llm_span(name, given, "general", ("openai",))
            ask_proxy_to_nest(kwargs, span, kwargs.get("metadata"))
        else:
            span = open_llm_span(name, given, "llm", ("openai",))
            span.provider = _provider(base_url)
        _note_secrets(span, client)
        return span
    except Exception:
        log_once("openai:start", "tracekit: could not trace an openai call")
        return None


def _price(span: LLMSpan, requested_model: str | None, service_tier: str | None) -> None:
    """Cost for an LLM span; none for a proxy's client span (tokens and cost are the proxy's)."""
    if span.type != "llm":
        span.usage = None
        return
    if span.total_cost is None:
        span.total_cost = cost_of((span.model, requested_model), span.usage, service_tier)


def _describe(result: Any, kind: str, requested_model: str | None) -> Any:
    facts = ResultFacts(result, kind)
    tier = getattr(result, "service_tier", None)

    def describe(span: LLMSpan) -> None:
        facts.describe(span)
        _price(span, requested_model, tier if isinstance(tier, str) else None)

    return describe


def settle(span: LLMSpan, resource: Any, kind: str, result: Any) -> None:
    """End `span` with `result`, or, for a stream, when the stream ends. Never raises.

    A `with_raw_response` result is parsed (openai caches it: the caller's own
    `parse()` gets the same object); a raw stream, or a
    `with_streaming_response` body, is left unread: its span has no output.
    """
    try:
        _note_secrets(span, resource._client)
        if isinstance(result, openai.Stream | openai.AsyncStream):
            follow_stream(span, kind, result, _price)
            return
        if isinstance(result, _RAW) and not getattr(result, "_stream", True):
            result = result.parse()  # type: ignore[union-attr]
        if isinstance(result, openai.BaseModel):
            span.describe_later(_describe(result, kind, span.model))
    except Exception:
        log_once("openai:result", "tracekit: could not record an openai result")
    span.end()


def fail(span: LLMSpan, resource: Any, error: BaseException) -> None:
    """The call raised `error` (the caller gets it unchanged)."""
    with contextlib.suppress(Exception):
        _note_secrets(span, resource._client)
    span.fail(error)
