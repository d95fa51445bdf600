"""The openai SDK pointed at a LiteLLM proxy: one LLM span per call, the proxy's, in our trace.

Against the suite's real proxy (tests/litellm_proxy.py), listed with
`configure(litellm_proxies=[...])`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Iterator
from typing import Any

import openai
import opik
import pytest

import tracekit
from tests.litellm_proxy import ANSWER, MODEL, LiteLLMProxy, answer_in_a_trace
from tests.opik_server import OpikServer

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server(opik_server: OpikServer, litellm_proxy: LiteLLMProxy) -> Iterator[OpikServer]:
    opik_server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05, litellm_proxies=[litellm_proxy.url])
    tracekit.instrument_openai()
    yield opik_server
    tracekit.uninstrument_openai()
    tracekit.configure(exporter="none")


def _client(proxy: LiteLLMProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url, api_key=proxy.api_key)


def _async_client(proxy: LiteLLMProxy) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.url, api_key=proxy.api_key)


def _run(mode: str, proxy: LiteLLMProxy) -> str:
    """One call through the proxy, made `mode`'s way (each client closed after): the text."""
    if mode.startswith("async"):
        return asyncio.run(_run_async(mode, proxy))
    with _client(proxy) as client:
        return _run_sync(mode, client)


def _run_sync(mode: str, client: openai.OpenAI) -> str:
    if mode == "sync":
        reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return str(reply.choices[0].message.content)
    if mode == "parse":
        parsed = client.chat.completions.parse(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return str(parsed.choices[0].message.content)
    if mode == "raw":
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return str(raw.parse().choices[0].message.content)
    if mode == "stream":
        chunks = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    if mode == "responses":
        return client.responses.create(model=MODEL, input="hi").output_text
    if mode == "embedding":
        reply_e = client.embeddings.create(model="mock-embedding", input=["hi"])
        return ANSWER if reply_e.data else ""
    raise ValueError(mode)


async def _run_async(mode: str, proxy: LiteLLMProxy) -> str:
    async with _async_client(proxy) as client:
        if mode == "async":
            reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            return str(reply.choices[0].message.content)
        chunks = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


def _llm_spans(server: OpikServer) -> list[dict[str, Any]]:
    return [s for s in server.spans.values() if s.get("type") == "llm"]


@pytest.mark.parametrize(
    "mode", ["sync", "parse", "raw", "stream", "async", "async-stream", "responses", "embedding"]
)
def test_an_openai_call_to_a_proxy_nests_the_proxys_llm_span(
    server: OpikServer, litellm_proxy: LiteLLMProxy, mode: str
) -> None:
    answer, trace_id = answer_in_a_trace(
        lambda: _run(mode, litellm_proxy),
        project_name="openai-proxy",
        thread_id="th-1",
        tags=["ctx"],
    )
    assert answer == ANSWER
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans_of(trace_id)) == 3, timeout=30)
    by_name = {s["name"]: s for s in server.spans_of(trace_id)}
    kind = {"embedding": "embeddings", "responses": "responses"}.get(mode, "chat.completions")
    client = by_name[f"openai.{kind}"]
    (llm,) = [s for s in server.spans_of(trace_id) if s["type"] == "llm"]
    assert client["type"] == "general"
    assert client["parent_span_id"] == by_name["answer"]["id"]
    assert llm["parent_span_id"] == client["id"]
    assert llm["trace_id"] == by_name["answer"]["trace_id"]
    assert llm["project_name"] == "openai-proxy"
    assert "ctx" in llm.get("tags", [])
    assert server.traces[trace_id]["thread_id"] == "th-1"
    if mode == "responses":
        assert client["output"] == {"output": ANSWER}
    elif mode not in ("embedding", "raw"):  # a raw response is left for the caller to read
        assert client["output"]["content"] == ANSWER


def _open_stream(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )


def test_a_stream_dropped_unread_still_ends_its_span(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    with tracekit.span("caller"), _client(litellm_proxy) as client:
        stream = _open_stream(client)
        stream.response.close()
        del stream
        gc.collect()
    assert tracekit.flush(10)
    client = next(s for s in server.spans.values() if s["name"] == "openai.chat.completions")
    assert client["metadata"]["stream_completed"] is False


def test_no_active_span_adds_nothing_and_records_nothing(
    server: OpikServer, litellm_proxy: LiteLLMProxy, tracekit_capture: Any
) -> None:
    _run("sync", litellm_proxy)
    assert tracekit_capture.spans == []
    # The proxy logs the call in a trace of its own: let it arrive in this test.
    assert server.wait_for(
        lambda: sum(s["trace_id"] in server.traces for s in _llm_spans(server)) == 1, timeout=30
    )


@pytest.mark.parametrize(
    ("proxies", "error"),
    [("http://127.0.0.1:4000", TypeError), (["127.0.0.1:4000"], ValueError), ([4000], ValueError)],
)
def test_bad_proxy_urls_are_refused_naming_them(proxies: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="litellm_proxies"):
        tracekit.configure(exporter="none", litellm_proxies=proxies)


def test_the_environment_lists_proxies_and_a_bad_entry_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACEKIT_LITELLM_PROXIES", " http://a:4000/ , nope ,https://b")
    with caplog.at_level(logging.WARNING, "tracekit"):
        tracekit.configure(exporter="none")
    from tracekit import _config

    assert _config.is_litellm_proxy("http://a:4000/v1")
    assert _config.is_litellm_proxy("https://b")
    assert not _config.is_litellm_proxy("http://a:40001")
    monkeypatch.delenv("TRACEKIT_LITELLM_PROXIES")
    tracekit.configure(exporter="none")


def test_the_callers_own_metadata_argument_reaches_the_proxy(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    """openai's `metadata=` is a top-level field that extra_body's would replace: it is merged."""
    with tracekit.span("caller"), _client(litellm_proxy) as client:
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            metadata={"callerkey": "mine"},
        )
    assert tracekit.flush(10)

    def nested() -> list[dict[str, Any]]:  # (a late span of an earlier test may arrive too)
        clients = {s["id"] for s in server.spans.values() if s["name"] == "openai.chat.completions"}
        return [s for s in _llm_spans(server) if s.get("parent_span_id") in clients]

    assert server.wait_for(lambda: len(nested()) == 1, timeout=30)
    assert "callerkey" in json.dumps(nested()[0])


@pytest.mark.parametrize("how", ["close", "with"])
def test_closing_a_stream_ends_its_span_then(
    server: OpikServer, litellm_proxy: LiteLLMProxy, how: str, exported_capture: Any
) -> None:
    with tracekit.span("caller"), _client(litellm_proxy) as client:
        stream = _open_stream(client)
        if how == "close":
            next(iter(stream))
            stream.close()
        else:
            with stream:
                next(iter(stream))
        (span,) = [s for s in exported_capture.spans if s.name == "openai.chat.completions"]
        assert span.metadata["stream_completed"] is False
        del stream


def test_exporting_elsewhere_a_call_to_a_listed_proxy_is_an_llm_span_with_tokens(
    opik_server: OpikServer, litellm_proxy: LiteLLMProxy, exported_capture: Any, tmp_path: Any
) -> None:
    """The proxy's span cannot nest under a trace Opik never gets: tracekit records the call."""
    opik_server.reset()
    tracekit.configure(
        exporter="sqlite", db_path=tmp_path / "t.db", litellm_proxies=[litellm_proxy.url]
    )
    tracekit.instrument_openai()
    try:
        with tracekit.span("caller") as caller, _client(litellm_proxy) as client:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    finally:
        tracekit.uninstrument_openai()
        tracekit.configure(exporter="none")
    llm = exported_capture.named("openai.chat.completions")
    assert llm.type == "llm"
    assert llm.parent_id == caller.id
    assert llm.usage["total_tokens"] > 0
    # Nothing asked of the proxy: it logs the call in a trace of its own.
    assert opik_server.wait_for(lambda: len(_llm_spans(opik_server)) == 1, timeout=30)
    (theirs,) = _llm_spans(opik_server)
    assert theirs["trace_id"] != caller.trace_id


@pytest.mark.parametrize(
    ("listed", "client_url", "matches"),
    [
        ("http://LocalHost:4000", "http://localhost:4000/", True),
        ("https://gw.example", "https://gw.example:443/v1", True),
        ("http://gw.example:80/v1", "http://gw.example", True),
        ("http://h:4000/team", "http://h:4000/team/v1", True),
        ("http://h:4000/team", "http://h:4000/teams", False),
        ("http://h:4000", "https://h:4000", False),
        ("http://h:4000", "http://h:40001", False),
        ("http://bücher.example:4000", "http://xn--bcher-kva.example:4000", True),
        ("http://[0:0:0:0:0:0:0:1]:4000", "http://[::1]:4000/v1", True),
        ("http://h/team%2Da/ä", "http://h/team-a/%C3%A4", True),
        ("http://user:pw@h:4000", "http://h:4000", True),
    ],
)
def test_proxy_urls_match_as_urls_not_text(listed: str, client_url: str, matches: bool) -> None:
    from tracekit import _config

    tracekit.configure(exporter="none", litellm_proxies=[listed])
    try:
        assert _config.is_litellm_proxy(client_url) is matches
    finally:
        tracekit.configure(exporter="none", litellm_proxies=[])


@pytest.mark.parametrize(
    "bad", ["http://x y", "http://x\n", "https:// ", "http://[bad", "http://h:99999", "ftp://h"]
)
def test_a_proxy_url_that_is_not_one_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="litellm_proxies"):
        tracekit.configure(exporter="none", litellm_proxies=[bad])


def test_a_call_under_opik_track_alone_nests_the_proxys_span_under_it(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    @opik.track(name="opik-caller")
    def caller() -> None:
        _run("sync", litellm_proxy)

    caller()
    opik.flush_tracker()
    assert tracekit.flush(10)
    (theirs,) = [s for s in server.spans.values() if s["name"] == "opik-caller"]
    assert server.wait_for(lambda: len(server.spans_of(theirs["trace_id"])) == 3, timeout=30)
    client = next(s for s in server.spans_of(theirs["trace_id"]) if s["name"].startswith("openai."))
    (llm,) = [s for s in server.spans_of(theirs["trace_id"]) if s["type"] == "llm"]
    assert client["parent_span_id"] == theirs["id"]
    assert llm["parent_span_id"] == client["id"]


def test_metadata_not_given_still_joins_the_trace(
    server: OpikServer, litellm_proxy: LiteLLMProxy
) -> None:
    """openai's `NOT_GIVEN` marker is no value of the caller's: the proxy is told."""

    def run() -> str:
        with _client(litellm_proxy) as client:
            reply = client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,  # type: ignore[arg-type]
                metadata=openai.NOT_GIVEN,
                extra_body=openai.NOT_GIVEN,  # type: ignore[arg-type]
            )
            return str(reply.choices[0].message.content)

    _, trace_id = answer_in_a_trace(run)
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans_of(trace_id)) == 3, timeout=30)


@pytest.mark.parametrize("given", [["http://user:s3cretpw@proxy:99999"], "http://u:s3cretpw@h"])
def test_a_refused_proxy_url_is_named_without_its_password(given: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as refused:
        tracekit.configure(exporter="none", litellm_proxies=given)
    assert "s3cretpw" not in str(refused.value)
    assert ":***@" in str(refused.value)
