"""The LLM span, whatever made the call: its shape, and what a call's result says.

Provider-neutral: the LiteLLM hooks (`_llm_calls`, `litellm.py`) and the
openai SDK hooks (`openai.py`) open, fill and describe their LLM spans with
what is here, so both give one shape (DESIGN.md §5b): input as at the call,
allow-listed model parameters, output as the assistant message, usage in
Opik's format, and the call's credentials scrubbed everywhere.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from tracekit._context import active_span
from tracekit._inputs import snapshot
from tracekit._log import log_once
from tracekit._pipeline import emit
from tracekit._redact import REDACTED, Redactor, default_redactor, register_secret
from tracekit._span import Span, SpanType

__all__ = [
    "CREDENTIAL_ARGUMENTS",
    "INPUT_ARGUMENTS",
    "MODEL_PARAMETERS",
    "LLMCallInterrupted",
    "LLMSpan",
    "ResultFacts",
    "add_credential_arguments",
    "assistant_message",
    "end_stream_owners",
    "open_llm_span",
    "opik_usage",
    "output_of",
    "secret_values",
]

# Packages whose LLM calls an instrumented integration logs already (LiteLLM):
# an SDK call they make themselves (LiteLLM calls OpenAI through the openai SDK)
# is not logged again by the SDK's integration. One LLM span per call.
logged_callers: set[str] = set()

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


# Fills an LLM span from what its call returned (see `LLMSpan.describe_later`).
Describe = Callable[["LLMSpan"], None]


def _DESCRIBING(span: LLMSpan) -> None:
    """Stands for a description in progress (see `LLMSpan.describe_now`)."""


_describing_lock = threading.RLock()


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
    what the result held (`ResultFacts.pin`), not a description.
    """

    __slots__ = ("_describe", "secret_values")

    secret_values: tuple[str, ...]

    def __init__(
        self, name: str, parent: Span | None, type: SpanType, tags: tuple[str, ...]
    ) -> None:
        self._describe: Describe | None = None
        super().__init__(name, type, parent, tags=tags)

    def describe_later(self, describe: Describe) -> None:
        """Fill the span from the result with `describe(span)` when it is first read."""
        self._describe = describe

    def describe_now(self) -> None:
        """Fill the span from the result now, if it has not been yet.

        Once, whichever thread reads first (the export thread, a test reading
        a captured span): another thread reading meanwhile waits for the
        whole description, never sees half of it.
        """
        if self._describe is None:
            return
        with _describing_lock:  # reentrant: `describe` reads the span's fields too
            describe = self._describe
            if describe is None or describe is _DESCRIBING:
                return
            self._describe = _DESCRIBING
            try:
                describe(self)
            except Exception:
                log_once("llm:describe", "tracekit: could not read an LLM call's result")
            finally:
                self._describe = None

    def end_at(self, end_ns: int | None) -> None:
        """End the span at `end_ns` (when the result reached the caller), or now."""
        if end_ns is None:
            self.end()
        elif self._end_ns is None:
            self._end_ns = max(end_ns, self._start_ns)
            emit(self)

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

# Arguments that carry a call's credentials: LiteLLM's (`CredentialLiteLLMParams`,
# its per-call logging-callback keys) and the openai SDK's, as of LiteLLM 1.105.
# `instrument_litellm()` adds the installed LiteLLM's own names too. Only these
# arguments (and headers, URLs with userinfo) are read for secret values: every
# other argument is never read at all, except the INPUT_ARGUMENTS and
# MODEL_PARAMETERS that the span records (see `open_llm_span`).
CREDENTIAL_ARGUMENTS = frozenset(
    (
        "api_key",
        "token",
        "access_token",
        "api_token",
        "password",
        "secret",
        "client_secret",
        "azure_ad_token",
        "azure_password",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_web_identity_token",
        "s3_access_key_id",
        "s3_secret_access_key",
        "vertex_credentials",
        "arize_api_key",
        "arize_space_key",
        "dd_api_key",
        "humanloop_api_key",
        "langfuse_public_key",
        "langfuse_secret",
        "langfuse_secret_key",
        "langsmith_api_key",
        "newrelic_api_key",
        "posthog_api_key",
        "signoz_ingestion_key",
        "valkey_password",
        "wandb_api_key",
    )
)
# Mappings of headers: every secret-named header's value (`Authorization`, `api-key`).
_HEADER_ARGUMENTS = frozenset(("headers", "extra_headers", "default_headers"))
_URL_ARGUMENTS = frozenset(("api_base", "base_url", "proxy", "http_proxy", "https_proxy"))
# Mappings of call parameters: read like the call's own arguments.
_NESTED_ARGUMENTS = frozenset(("litellm_params", "credentials"))
_credential_arguments = CREDENTIAL_ARGUMENTS
_scanned = CREDENTIAL_ARGUMENTS | _HEADER_ARGUMENTS | _URL_ARGUMENTS | _NESTED_ARGUMENTS


def add_credential_arguments(names: Iterable[str]) -> None:
    """Read the arguments `names` for credentials too (an integration's own names)."""
    global _credential_arguments, _scanned
    _credential_arguments = _credential_arguments | frozenset(names)
    _scanned = _scanned | _credential_arguments


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
    """`Redactor.is_secret`, remembered: the same few header names come every call."""
    known = _secret_names.get(key)
    if known is None:
        if len(_secret_names) > 4096:
            _secret_names.clear()
        known = _secret_names[key] = _secret_keys.is_secret(key)
    return known


def _credential(value: str, found: list[str]) -> None:
    """`value` of a credential, and the token of an `Authorization`-style value."""
    found.append(value)
    scheme, _, token = value.partition(" ")
    if token and f"{scheme.lower()} " in _AUTH_SCHEMES and len(token) >= 6:
        found.append(token.strip())


def _header_secrets(headers: Mapping[Any, Any], found: list[str]) -> None:
    for key, value in headers.items():
        if (
            isinstance(key, str)
            and isinstance(value, str)
            and len(value) >= 6
            and _is_secret_name(key)
        ):
            _credential(value, found)


def _secrets_in(kwargs: Mapping[str, Any], found: list[str], depth: int) -> None:
    # Only the arguments known to carry credentials: a set intersection in C
    # (it walks the call's few arguments), not a Python loop over all of them.
    for key in _scanned.intersection(kwargs):
        value = kwargs[key]
        if isinstance(value, str):
            if len(value) < 6:
                continue
            if key in _credential_arguments:
                _credential(value, found)
            elif key in _URL_ARGUMENTS:
                found.extend(_userinfo_secrets(value))
        elif isinstance(value, Mapping):
            if key in _HEADER_ARGUMENTS:
                _header_secrets(value, found)
            elif key in _NESTED_ARGUMENTS and depth < 2:
                _secrets_in(value, found, depth + 1)
            elif key in _credential_arguments:  # a service account's JSON, as a dict
                _header_secrets(value, found)


def secret_values(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The call's credentials, found once per call in its credential arguments only.

    Values of the known credential arguments (`CREDENTIAL_ARGUMENTS`), of
    secret-named headers, and URL userinfo. Each is registered with the
    redactor, so it is scrubbed from every span (the enclosing spans'
    `error_info` quotes it too), not only this call's. A credential passed
    under any other argument name is not looked for: no other argument
    reaches a span, and the exporter still scrubs token-shaped text.
    """
    found: list[str] = []
    _secrets_in(kwargs, found, 0)
    for value in found:
        register_secret(value)
    return tuple(found)


class LLMCallInterrupted(Exception):
    """Recorded on an LLM span whose call ended without a result or an error.

    That happens when the call is cancelled (asyncio or trio), interrupted
    (KeyboardInterrupt), or its coroutine is dropped before it finishes.
    """


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
    return {key: getattr(usage, key, None) for pair in _TOKEN_COUNTS for key in pair}


# Opik's token counts, and the Responses API's name for each.
_TOKEN_COUNTS = (
    ("prompt_tokens", "input_tokens"),
    ("completion_tokens", "output_tokens"),
    ("total_tokens", "total_tokens"),
)


def opik_usage(usage: Any) -> dict[str, int] | None:
    """Token counts in Opik's format, as Opik's own integrations send them.

    `prompt_tokens`, `completion_tokens`, `total_tokens`, plus every integer
    of the provider's usage flattened under `original_usage.` (Opik keeps
    only integers). The Responses API's `input_tokens` / `output_tokens` count
    as prompt and completion tokens, as Opik's OpenAI integration counts them.
    """
    original = usage_fields(usage)
    if original is None:
        return None
    counts: dict[str, int] = {}
    for key, alias in _TOKEN_COUNTS:
        value = original.get(key, original.get(alias))
        if isinstance(value, int) and not isinstance(value, bool):
            counts[key] = value
    _flat_ints(original, "original_usage", counts)
    return counts or None


def assistant_message(text: str | None) -> dict[str, Any] | None:
    """The output of a chat call whose reply is `text` (a stream's, say)."""
    return None if text is None else {"role": "assistant", "content": text}


def output_of(result: Any) -> Any:
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


def finite_cost(cost: object) -> float | None:
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        return float(cost)
    return None


class ResultFacts:
    """What a call's result says, kept as it was when it reached the caller.

    Kept, because the caller owns the result and may change it right away
    (`response.choices[0].message.content = ...`); formatting waits for the
    export thread (`describe`). `ResultFacts.pin` keeps a chat response for
    a fraction of the cost.
    """

    __slots__ = ("_message", "_text_only", "cost", "model", "output", "provider", "usage")

    def __init__(
        self, result: Any, kind: str, cost: float | None = None, provider: str | None = None
    ) -> None:
        model = getattr(result, "model", None)
        self.model = model if isinstance(model, str) and model else None
        output = output_of(result)
        if kind == "text_completion" and isinstance(output, dict):
            output = output.get("content")  # LiteLLM answers it with a chat response
        self.output = output
        self.usage = usage_fields(getattr(result, "usage", None))
        self.cost = cost
        self.provider = provider
        self._message: dict[str, Any] | None = None
        self._text_only = False

    @classmethod
    def pin(
        cls, result: Any, kind: str, cost: float | None = None, provider: str | None = None
    ) -> ResultFacts:
        """`ResultFacts(result, ...)`, cheap enough for the caller's path of a chat call.

        A pydantic chat response (LiteLLM's `ModelResponse`) is pinned, not
        read: its fields, its first message's fields and its usage's fields are
        copied as they are (three small dict copies, no pydantic code runs),
        and reading them into an output and Opik's usage waits for `describe`
        on the export thread. So the caller changing an attribute afterwards
        (the message's content, a token count, the model) changes nothing
        recorded. Objects nested deeper (a tool call, token details) are kept
        by reference: changed in place before the span is exported, the record
        shows the change. Any other result is read at once, as by `ResultFacts()`.
        """
        try:
            fields = result.__dict__
            message_fields = fields["choices"][0].__dict__["message"].__dict__
        except (AttributeError, KeyError, IndexError, TypeError):
            return cls(result, kind, cost, provider)
        if type(fields) is not dict or type(message_fields) is not dict:
            return cls(result, kind, cost, provider)
        facts = cls.__new__(cls)
        model = fields.get("model")
        facts.model = model if isinstance(model, str) and model else None
        message = facts._message = message_fields.copy()
        tool_calls = message.get("tool_calls")
        if tool_calls:
            message["tool_calls"] = list(tool_calls)
        facts._text_only = kind == "text_completion"  # LiteLLM answers it with a chat response
        facts.output = None
        usage = fields.get("usage")
        if usage is None:
            extra = getattr(result, "__pydantic_extra__", None)  # where ModelResponse keeps it
            usage = extra.get("usage") if type(extra) is dict else None
        facts.usage = usage_fields(usage)
        facts.cost = cost
        facts.provider = provider
        return facts

    def describe(self, span: Span) -> None:
        """Fill the LLM span with these facts (usage in Opik's format)."""
        if self.model is not None:
            span.model = self.model
        output = self.output
        message = self._message
        if message is not None:  # as `output_of` reads a message
            output = {"role": message.get("role", "assistant"), "content": message.get("content")}
            tool_calls = message.get("tool_calls")
            if tool_calls:
                output["tool_calls"] = [
                    tc.model_dump() if hasattr(tc, "model_dump") else tc for tc in tool_calls
                ]
            if self._text_only:
                output = output["content"]
        span.output = output
        span.usage = opik_usage(self.usage)
        if self.cost is not None:
            span.total_cost = self.cost
        if self.provider is not None:
            span.provider = self.provider


def open_llm_span(
    name: str, kwargs: Mapping[str, Any], type: SpanType, tags: tuple[str, ...]
) -> LLMSpan:
    """The span of an LLM call made with `kwargs`, under the active span.

    Input, model and allow-listed parameters as at the call; the call's
    credentials are found and registered (see `secret_values`).
    """
    span = LLMSpan(name, active_span.get(), type, tags)
    # Most calls pass no credential (LiteLLM reads the environment's): one C call then.
    span.secret_values = () if _scanned.isdisjoint(kwargs) else secret_values(kwargs)
    model = kwargs.get("model")
    span.model = model if isinstance(model, str) else None
    # Copied: chat code often appends the reply to the same list, or edits
    # a message, right after the call. (`frozenset.intersection(kwargs)` walks
    # the call's few arguments, in C.)
    span.input = {
        k: snapshot(v) for k in INPUT_ARGUMENTS.intersection(kwargs) if (v := kwargs[k]) is not None
    }
    given = MODEL_PARAMETERS.intersection(kwargs)
    if given:
        parameters = {k: v for k in given if (v := kwargs[k]) is not None}
        if parameters:
            span.metadata = {"model_parameters": parameters}
    return span


# A tracked call that returned an LLM stream, and whether it records its output:
# it ends with the stream (see `end_stream_owners`).
StreamOwner = tuple[Span, bool]


def end_stream_owners(
    owners: list[StreamOwner],
    text: str | None,
    completed: bool,
    error: BaseException | None = None,
) -> None:
    """End the tracked calls that returned a stream, now that the stream ended.

    Each gets the streamed text as output (unless it set its own), and is
    marked `stream_completed: False` when the stream was given up early.
    """
    for owner, capture_output in owners:
        if capture_output and not owner._output_fixed:
            owner.output = text
        if error is not None:
            owner.fail(error)
            continue
        if not completed:
            owner.metadata = {**(owner.metadata or {}), "stream_completed": False}
        owner.end()
