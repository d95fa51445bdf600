"""What a LiteLLM call's caller pays for tracekit: little, and nothing it can see.

The result is read into the LLM span on the export thread, from what it held
when it reached the caller; credentials are looked for in the credential
arguments only; the `@opik.track` interop costs nothing until opik has a span.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import opik
import pytest

import tracekit
from tests.opik_server import OpikServer
from tracekit import _hooks
from tracekit._records import span_record
from tracekit.integrations import opik as opik_interop
from tracekit.integrations._llm_spans import LLMSpan, ResultFacts
from tracekit.integrations.litellm import _hidden_params, _opik_provider_name
from tracekit.testing import Capture

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "gpt-4o-mini"
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
}


def _llm_span(captured: Capture) -> LLMSpan:
    (span,) = [s for s in captured.spans if isinstance(s, LLMSpan)]
    return span


def _read_at_once(result: Any, kind: str, like: LLMSpan) -> dict[str, Any]:
    """The fields an eager read of `result` gives (as before the read was deferred)."""
    hidden = _hidden_params(result)
    span = LLMSpan(like.name, None, "llm", ("litellm",))
    cost, provider = hidden.get("response_cost"), hidden.get("custom_llm_provider")
    ResultFacts(result, kind, cost, provider).describe(span)
    # With no provider in the result, the call's (LiteLLM's logging object's): openai here.
    span.provider = _opik_provider_name(span.provider or "openai")
    return {k: getattr(span, k) for k in ("output", "usage", "model", "total_cost", "provider")}


@pytest.mark.parametrize(
    ("kind", "call"),
    [
        ("completion", {"messages": MESSAGES, "mock_response": "hello"}),
        ("completion", {"messages": MESSAGES, "mock_tool_calls": [TOOL_CALL]}),
        ("text_completion", {"prompt": "hi", "mock_response": "hello"}),
        ("embedding", {"input": ["hi"], "mock_response": [0.1, 0.2]}),
    ],
    ids=["chat", "tool-call", "text-completion", "embedding"],
)
def test_a_deferred_read_of_the_result_records_what_an_eager_read_does(
    litellm_instrumented: None, tracekit_capture: Capture, kind: str, call: dict[str, Any]
) -> None:
    """Output, usage, model, cost and provider are those of reading the result at once."""
    model = "text-embedding-3-small" if kind == "embedding" else MODEL
    with tracekit.span("agent"):
        result = getattr(litellm, kind)(model=model, **call)
    span = _llm_span(tracekit_capture)
    record = span_record(span)
    expected = _read_at_once(result, kind, span)
    assert {k: getattr(record, k) for k in expected} == expected
    assert record.output is not None
    if kind != "embedding":
        assert record.usage is not None
        assert record.usage["prompt_tokens"] > 0


def _count_fallback_lookups_by_tracekit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names tracekit's own code looks up through pydantic's missing-attribute fallback."""
    looked_up: list[str] = []
    fallback = litellm.ModelResponse.__getattr__

    def counting(self: Any, name: str) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("tracekit"):
            looked_up.append(name)
        return fallback(self, name)

    monkeypatch.setattr(litellm.ModelResponse, "__getattr__", counting)
    return looked_up


def test_the_callers_path_looks_up_no_missing_attribute_of_the_response(
    litellm_instrumented: None, monkeypatch: pytest.MonkeyPatch, tracekit_capture: Capture
) -> None:
    """tracekit reads a chat response's fields, never pydantic's slow missing-attribute path.

    (A missing attribute of a pydantic model costs microseconds to look up.)
    """
    looked_up = _count_fallback_lookups_by_tracekit(monkeypatch)
    with tracekit.span("agent"):
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response="hello")
    assert looked_up == []
    assert _llm_span(tracekit_capture).output == {"role": "assistant", "content": "hello"}


def test_a_tracked_call_returning_a_response_looks_up_no_missing_attribute(
    litellm_instrumented: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking whether a tracked call returned a LiteLLM stream reads no pydantic fallback."""
    response = litellm.completion(model=MODEL, messages=MESSAGES, mock_response="hello")
    looked_up = _count_fallback_lookups_by_tracekit(monkeypatch)

    @tracekit.track
    def answer() -> Any:
        return response

    assert answer() is response
    assert looked_up == []


@pytest.fixture
def sqlite_store(tmp_path: Path, litellm_instrumented: None) -> Iterator[Path]:
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "t.db", flush_interval=0.01)
    yield tmp_path
    tracekit.configure(exporter="none")


def _stored(directory: Path) -> bytes:
    assert tracekit.flush(15)
    return b"".join(path.read_bytes() for path in sorted(directory.glob("t.db*")))


@pytest.mark.parametrize(
    ("argument", "secret", "value"),
    [
        ("aws_secret_access_key", "awssecret-Qz8Lm3Tx7Vb1", "awssecret-Qz8Lm3Tx7Vb1"),
        ("aws_access_key_id", "AKIAQZ8LM3TX7VB1WQ4E", "AKIAQZ8LM3TX7VB1WQ4E"),
        ("azure_ad_token", "adtoken-Hq3Lw9Zt7Ys1Nb", "adtoken-Hq3Lw9Zt7Ys1Nb"),
        (
            "vertex_credentials",
            "privkey-Rt5Gy7Uj9Ik3Ol1",
            {"type": "service_account", "private_key": "privkey-Rt5Gy7Uj9Ik3Ol1"},
        ),
    ],
)
def test_a_credential_argument_reaches_no_span_and_not_the_store(
    sqlite_store: Path, argument: str, secret: str, value: Any
) -> None:
    """A credential passed as a credential argument is scrubbed from every span, even quoted."""

    @tracekit.track
    def agent() -> None:
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response="ok", **{argument: value})
        raise RuntimeError(f"the provider refused {secret}")

    with tracekit.testing.capture(export=True) as captured, pytest.raises(RuntimeError):
        agent()
    stored = _stored(sqlite_store)
    assert b"the provider refused" in stored
    assert secret.encode() not in stored
    llm = _llm_span(captured)
    assert secret not in repr((llm.input, llm.metadata, llm.output, llm.error_info))


def test_other_arguments_are_not_read_for_credentials(litellm_instrumented: None) -> None:
    """Only credential arguments are looked at: a message that looks like one is not a secret."""
    from tracekit.integrations._llm_spans import secret_values

    assert secret_values({"api_key": "sk-abcdef123456", "user": "someone-long-name"}) == (
        "sk-abcdef123456",
    )
    assert secret_values({"extra_headers": {"Authorization": "Bearer tok-123456789"}}) == (
        "Bearer tok-123456789",
        "tok-123456789",
    )


# -- the @opik.track interop ---------------------------------------------------------------


@pytest.fixture
def opik_interop_counted(
    opik_server: OpikServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[object]]:
    """LiteLLM instrumented; every question the interop asks of opik's context, counted."""
    asked: list[object] = []
    choose = opik_interop.choose_parent

    def counted(parent: Any) -> Any:
        asked.append(parent)
        return choose(parent)

    monkeypatch.setattr(opik_interop, "choose_parent", counted)
    opik_server.reset()
    litellm.logging_callback_manager._reset_all_callbacks()
    tracekit.instrument_litellm()
    yield asked
    tracekit.uninstrument_litellm()
    opik.flush_tracker()


@tracekit.track
def tracked(n: int) -> int:
    return n + 1


def test_without_opik_spans_tracked_calls_never_ask_the_interop(
    opik_interop_counted: list[object], tracekit_capture: Capture
) -> None:
    """After instrument_litellm(), with no @opik.track in use, spans never consult opik."""
    for n in range(5):
        assert tracked(n) == n + 1
    with tracekit.span("agent"):
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response="ok")
    assert opik_interop_counted == []
    assert _hooks.choose_parent == ()
    assert len(tracekit_capture.spans) == 7


def test_the_first_opik_span_turns_the_interop_on(
    opik_interop_counted: list[object], tracekit_capture: Capture
) -> None:
    """Once an @opik.track span opens, tracekit spans under it nest under it."""
    seen: dict[str, str] = {}

    @opik.track(name="opik-outer")
    def outer() -> int:
        current = opik.opik_context.get_current_span_data()
        assert current is not None
        seen["id"] = current.id
        return tracked(1)

    assert tracked(0) == 1
    assert opik_interop_counted == []
    assert outer() == 2
    assert opik_interop_counted  # asked from the first opik span on
    inner = [s for s in tracekit_capture.spans if s.name == "tracked"][-1]
    assert inner.parent_id == seen["id"]


def test_an_opik_span_open_when_instrumenting_is_seen(
    opik_server: OpikServer, tracekit_capture: Capture
) -> None:
    """Instrumenting inside an @opik.track call: tracekit spans there nest under it at once."""
    seen: dict[str, str] = {}

    @opik.track(name="opik-outer")
    def outer() -> int:
        current = opik.opik_context.get_current_span_data()
        assert current is not None
        seen["id"] = current.id
        tracekit.instrument_litellm()
        return tracked(1)

    opik_server.reset()
    try:
        assert outer() == 2
    finally:
        tracekit.uninstrument_litellm()
        opik.flush_tracker()
    (inner,) = [s for s in tracekit_capture.spans if s.name == "tracked"]
    assert inner.parent_id == seen["id"]
    assert _hooks.choose_parent == ()  # uninstrumenting took it off
