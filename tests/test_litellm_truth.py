"""LiteLLM LLM spans tell the truth: times, tokens, cost and shape (issue 9).

Each test compares tracekit's LLM span with an independent witness of the same
call: LiteLLM's own standard logging payload (seen by a real `CustomLogger`),
Opik's own usage conversion (`opik.llm_usage`), or the times the in-suite
Opik-compatible server recorded for the enclosing span. Real litellm with
`mock_response`, the real opik SDK and LiteLLM's real `OpikLogger`; nothing of
theirs is mocked. No wall-clock bound is asserted: times are only compared
with each other, and every wait is bounded and polls for an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import litellm
import opik
import pytest
from litellm.integrations.custom_logger import CustomLogger
from litellm.integrations.opik.opik_payload_builder.extractors import normalize_provider_name
from opik.llm_usage import try_build_opik_usage_or_log_error
from opik.types import LLMProvider

import tracekit
from tests.opik_server import OpikServer
from tests.polling import until, until_in_loop
from tracekit import _store
from tracekit.testing import Capture

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "gpt-4o-mini"
pytestmark = pytest.mark.usefixtures("litellm_instrumented")
TEXT = "Hello world"
ROOT = Path(__file__).resolve().parent.parent
TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


# -- witnesses and helpers -------------------------------------------------------------


class StandardLoggingSpy(CustomLogger):
    """A real LiteLLM callback keeping what LiteLLM itself reports for each call.

    Events are kept by `litellm_call_id`, so a call reported through both the
    sync and the async hook counts once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.events: dict[str, dict[str, Any]] = {}
        self.metadata: dict[str, dict[str, Any]] = {}

    # LiteLLM passes these by keyword: the names matter.
    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call_id = str(kwargs.get("litellm_call_id"))
        with self._lock:
            self.events[call_id] = dict(kwargs["standard_logging_object"])
            self.metadata[call_id] = dict(kwargs["litellm_params"].get("metadata") or {})

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)

    def events_under(self, span_id: str) -> list[dict[str, Any]]:
        """Events of calls made under the tracekit span `span_id`."""
        with self._lock:
            return [
                self.events[call_id]
                for call_id, metadata in self.metadata.items()
                if (metadata.get("opik") or {}).get("current_span_data", {}).get("id") == span_id
            ]

    def only_event(self) -> dict[str, Any]:
        with self._lock:
            (event,) = self.events.values()
        return event

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.metadata.clear()


def llm_spans(capture: Capture) -> list[tracekit.Span]:
    return [s for s in capture.spans if s.type == "llm"]


def wire_llm_spans(server: OpikServer) -> list[dict[str, Any]]:
    return [dict(s) for s in list(server.spans.values()) if s.get("type") == "llm"]


def wire_time(value: str) -> datetime:
    """A time the server recorded (ISO 8601); a time without a zone is UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def within(child: dict[str, Any], parent: dict[str, Any]) -> tuple[datetime, ...]:
    """The four recorded times, parent start, child start, child end, parent end."""
    return (
        wire_time(parent["start_time"]),
        wire_time(child["start_time"]),
        wire_time(child["end_time"]),
        wire_time(parent["end_time"]),
    )


def name_pattern(name: str) -> str:
    """A span name with a trailing creation stamp (LiteLLM's `{model}_{object}_{created}`)
    made generic, so names that differ only by when the call was made compare equal."""
    return re.sub(r"_\d+$", "_<created>", name)


def opik_usage_of(usage: dict[str, Any]) -> dict[str, int]:
    """What Opik's own LiteLLM integration sends as `usage` for this LiteLLM usage."""
    built = try_build_opik_usage_or_log_error(
        provider=LLMProvider.OPENAI,
        usage=usage,
        logger=logging.getLogger(__name__),
        error_message="opik could not read the usage",
    )
    assert built is not None
    return built.to_backend_compatible_full_usage_dict()


@pytest.fixture
def spy() -> StandardLoggingSpy:
    spy = StandardLoggingSpy()
    litellm.callbacks = [spy]
    return spy


@pytest.fixture
def server(opik_server: OpikServer) -> Iterator[OpikServer]:
    """tracekit exports to the in-suite Opik server; undone afterwards."""
    opik_server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05)
    yield opik_server
    tracekit.configure(exporter="none")


# -- 1. callback mode, asyncio.gather inside asyncio.run, in its own process ------------

GATHER_PROGRAM = """
import asyncio, sys, litellm, tracekit
tracekit.configure(exporter="opik")
tracekit.instrument_litellm()
litellm.callbacks = ["opik"]

@tracekit.track
async def gather_parent():
    responses = await asyncio.gather(*(
        litellm.acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                            mock_response=f"gathered answer {n}")
        for n in range(2)
    ))
    return [r.choices[0].message.content for r in responses]

async def main():
    return await gather_parent()

print("ANSWERS", asyncio.run(main()), flush=True)
ok = tracekit.flush(1.0)
print("FLUSHED", ok, flush=True)
sys.stdin.readline()  # stays alive until the test has looked at the server
print("EXITING", flush=True)
"""
GATHERED = ("gathered answer 0", "gathered answer 1")


class RunningProgram:
    """A Python program in a subprocess whose output lines are read as they come."""

    def __init__(self, source: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def line_starting(self, prefix: str, timeout: float) -> str | None:
        """The next output line starting with `prefix`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.startswith(prefix):
                return line.strip()
        return None

    def finish(self, timeout: float) -> int:
        """Let the program go on past its stdin read, and wait for its exit."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            returncode = self.process.wait()
        for reader in self._readers:  # the pipes end with the process
            reader.join(timeout)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return returncode


@dataclass
class GatherRun:
    """What the gather program printed, and what the server had, while alive and after."""

    flushed_line: str | None
    arrived_while_alive: bool
    alive_when_checked: bool
    returncode: int
    stderr: str
    wire_while_alive: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)

    def llm_spans_of(self, answer: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s.get("type") == "llm" and answer in repr(s)]

    def parent(self) -> dict[str, Any]:
        (parent,) = [s for s in self.spans if s.get("name") == "gather_parent"]
        return parent


def _gathered_llm_spans_complete(server: OpikServer) -> bool:
    spans = wire_llm_spans(server)
    return all(any(answer in repr(s) and s.get("end_time") for s in spans) for answer in GATHERED)


@pytest.fixture(scope="module")
def gather_run(opik_server: OpikServer) -> GatherRun:
    """Run GATHER_PROGRAM once against the server; the tests below read what happened."""
    opik_server.reset()
    env = {
        **os.environ,
        "OPIK_URL_OVERRIDE": opik_server.url,
        "OPIK_SENTRY_ENABLE": "false",
        "OPIK_ANALYTICS_ENABLE": "false",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    program = RunningProgram(GATHER_PROGRAM, env)
    flushed_line = program.line_starting("FLUSHED", timeout=45)
    # The program now blocks on stdin: what it logged "at once" is on the server by now.
    arrived = flushed_line is not None and opik_server.wait_for(
        lambda: _gathered_llm_spans_complete(opik_server), timeout=15
    )
    alive = program.process.poll() is None
    wire_while_alive = wire_llm_spans(opik_server)
    returncode = program.finish(timeout=30)
    opik_server.wait_for(lambda: _gathered_llm_spans_complete(opik_server), timeout=15)
    return GatherRun(
        flushed_line=flushed_line,
        arrived_while_alive=arrived,
        alive_when_checked=alive,
        returncode=returncode,
        stderr="".join(program.stderr)[-3000:],
        wire_while_alive=wire_while_alive,
        spans=[dict(s) for s in opik_server.spans.values()],
        traces={k: dict(v) for k, v in opik_server.traces.items()},
    )


def test_gather_program_runs_to_completion(gather_run: GatherRun) -> None:
    """The callback-mode gather program itself works (a precondition of the tests below)."""
    assert gather_run.returncode == 0, gather_run.stderr
    assert gather_run.flushed_line is not None, gather_run.stderr


def test_flush_after_asyncio_run_returns_true_in_callback_mode(gather_run: GatherRun) -> None:
    """flush(1.0) after the loop closed does not wait on dead callbacks: it returns True."""
    assert gather_run.flushed_line == "FLUSHED True", gather_run.stderr


def test_gathered_llm_spans_reach_opik_before_the_process_exits(gather_run: GatherRun) -> None:
    """Successes whose callback died with the loop are logged at once, not at exit."""
    assert gather_run.alive_when_checked, gather_run.stderr
    assert gather_run.arrived_while_alive, (
        [(s.get("name"), s.get("end_time")) for s in gather_run.wire_while_alive],
        gather_run.stderr,
    )


def test_each_gathered_call_has_exactly_one_llm_span_under_its_parent(
    gather_run: GatherRun,
) -> None:
    """One LLM span per call (no duplicates), a child of the tracked parent, in its trace."""
    parent = gather_run.parent()
    assert parent["trace_id"] in gather_run.traces
    for answer in GATHERED:
        spans = gather_run.llm_spans_of(answer)
        assert len(spans) == 1, (answer, [s.get("name") for s in spans])
        (llm,) = spans
        assert llm["parent_span_id"] == parent["id"]
        assert llm["trace_id"] == parent["trace_id"]


def test_gathered_llm_spans_end_within_their_parent(gather_run: GatherRun) -> None:
    """Every LLM span starts and ends inside its parent: the call's times, not exit time."""
    parent = gather_run.parent()
    for answer in GATHERED:
        spans = gather_run.llm_spans_of(answer)
        assert spans, (answer, "no LLM span arrived", gather_run.stderr)
        for llm in spans:
            parent_start, start, end, parent_end = within(llm, parent)
            assert parent_start <= start <= end <= parent_end, (
                answer,
                {"parent": (parent["start_time"], parent["end_time"])},
                {"llm": (llm["start_time"], llm["end_time"])},
            )


# -- 2. streams: tokens, cost and provider equal LiteLLM's own view --------------------


STREAM_OPTIONS = {
    "without_include_usage": {},
    "with_include_usage": {"stream_options": {"include_usage": True}},
}


def _sync_stream(spy: StandardLoggingSpy, extra: dict[str, Any]) -> None:
    @tracekit.track
    def chat() -> str:
        stream = litellm.completion(
            model=MODEL, messages=MESSAGES, mock_response=TEXT, stream=True, **extra
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream)

    assert chat() == TEXT
    assert until(lambda: len(spy.events) == 1), spy.events


def _async_stream(spy: StandardLoggingSpy, extra: dict[str, Any]) -> None:
    @tracekit.track
    async def chat() -> str:
        stream = await litellm.acompletion(
            model=MODEL, messages=MESSAGES, mock_response=TEXT, stream=True, **extra
        )
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream]
        return "".join(parts)

    async def main() -> str:
        text = await chat()
        assert await until_in_loop(lambda: len(spy.events) == 1), spy.events
        return text

    assert asyncio.run(main()) == TEXT


STREAM_RUNNERS: dict[str, Callable[[StandardLoggingSpy, dict[str, Any]], None]] = {
    "sync": _sync_stream,
    "async": _async_stream,
}


@pytest.mark.parametrize("options", STREAM_OPTIONS)
@pytest.mark.parametrize("mode", STREAM_RUNNERS)
def test_stream_tokens_cost_and_provider_equal_litellms_own(
    mode: str, options: str, spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """A stream read to its end: usage, total_cost and provider are what LiteLLM reports."""
    STREAM_RUNNERS[mode](spy, STREAM_OPTIONS[options])
    assert until(lambda: len(llm_spans(tracekit_capture)) == 1)
    (llm,) = llm_spans(tracekit_capture)
    litellm_view = spy.only_event()
    assert llm.usage is not None
    assert {k: llm.usage.get(k) for k in TOKEN_KEYS} == {k: litellm_view[k] for k in TOKEN_KEYS}
    assert llm.total_cost == pytest.approx(litellm_view["response_cost"])
    assert llm.provider == litellm_view["custom_llm_provider"] == "openai"


# -- 3. one shape, whichever path made the span ----------------------------------------


def _plain(**kwargs: Any) -> None:
    litellm.completion(**kwargs)


def _stream(**kwargs: Any) -> None:
    for _ in litellm.completion(stream=True, **kwargs):
        pass


def _in_loop(spy: StandardLoggingSpy, make: Callable[[], Any]) -> None:
    """Run an async call to its end, and wait in the loop for LiteLLM's async callback."""

    async def main() -> None:
        await make()
        assert await until_in_loop(lambda: len(spy.events) == 1), spy.events

    asyncio.run(main())


async def _read_async_stream(**kwargs: Any) -> None:
    stream = await litellm.acompletion(stream=True, **kwargs)
    async for _ in stream:
        pass


CHAT_PATHS: dict[str, Callable[[StandardLoggingSpy, dict[str, Any]], None]] = {
    "completion": lambda spy, kw: _plain(**kw),
    "stream": lambda spy, kw: _stream(**kw),
    "acompletion": lambda spy, kw: _in_loop(spy, lambda: litellm.acompletion(**kw)),
    "async_stream": lambda spy, kw: _in_loop(spy, lambda: _read_async_stream(**kw)),
}
CHAT_KWARGS: dict[str, Any] = {
    "model": MODEL,
    "messages": MESSAGES,
    "mock_response": TEXT,
    "temperature": 0.1,
}


def _one_llm_span_and_litellm_view(
    spy: StandardLoggingSpy, capture: Capture, run: Callable[[], None]
) -> tuple[tracekit.Span, dict[str, Any]]:
    spy.clear()
    capture.clear()
    with tracekit.span("agent") as agent:
        run()
    # A late event of an earlier test's call may still arrive: take this call's.
    assert until(lambda: len(spy.events_under(agent.id)) == 1), spy.events
    assert until(lambda: len(llm_spans(capture)) == 1)
    (llm,) = llm_spans(capture)
    assert llm.parent_id == agent.id
    (event,) = spy.events_under(agent.id)
    return llm, event


def _assert_common_shape(llm: tracekit.Span, litellm_view: dict[str, Any]) -> None:
    """Fields every LiteLLM LLM span carries, whatever the call type."""
    assert llm.usage is not None
    for key in TOKEN_KEYS:
        assert isinstance(llm.usage.get(key), int), (key, llm.usage)
        assert llm.usage[key] == litellm_view[key], (key, llm.usage, litellm_view[key])
    assert llm.model
    # The provider as LiteLLM's own Opik callback names it for the same call.
    assert llm.provider == normalize_provider_name(litellm_view["custom_llm_provider"])
    assert llm.provider
    assert llm.total_cost is not None
    assert llm.total_cost == pytest.approx(litellm_view["response_cost"])
    assert "litellm" in (llm.tags or [])


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_chat_llm_spans_have_one_shape_on_every_path(
    path: str, spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """Plain, streamed, async and async-streamed chat calls make the same kind of span."""
    reference, _ = _one_llm_span_and_litellm_view(
        spy, tracekit_capture, lambda: CHAT_PATHS["completion"](spy, CHAT_KWARGS)
    )
    llm, litellm_view = _one_llm_span_and_litellm_view(
        spy, tracekit_capture, lambda: CHAT_PATHS[path](spy, CHAT_KWARGS)
    )
    assert name_pattern(llm.name) == name_pattern(reference.name)
    assert llm.output == {"role": "assistant", "content": TEXT}
    _assert_common_shape(llm, litellm_view)
    assert llm.model == MODEL
    assert llm.metadata is not None
    assert llm.metadata["model_parameters"]["temperature"] == 0.1


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_chat_usage_carries_original_usage_as_opik_sends_it(
    path: str, spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """usage has LiteLLM's counts again as flat `original_usage.*` ints, as Opik's own
    LiteLLM integration sends them."""
    llm, litellm_view = _one_llm_span_and_litellm_view(
        spy, tracekit_capture, lambda: CHAT_PATHS[path](spy, CHAT_KWARGS)
    )
    assert llm.usage is not None
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in llm.usage.values()), (
        llm.usage
    )
    for key in TOKEN_KEYS:
        assert llm.usage.get(f"original_usage.{key}") == llm.usage.get(key) == litellm_view[key], (
            key,
            llm.usage,
        )


def test_plain_completion_usage_is_exactly_what_opik_would_send(
    tracekit_capture: Capture,
) -> None:
    """For a plain call, usage equals opik.llm_usage's conversion of LiteLLM's usage."""
    with tracekit.span("agent"):
        response = litellm.completion(model=MODEL, messages=MESSAGES, mock_response=TEXT)
    (llm,) = llm_spans(tracekit_capture)
    assert llm.usage == opik_usage_of(response.usage.model_dump())


def test_text_completion_span_outputs_text_with_the_common_shape(
    spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """text_completion: the output is the completion text; usage, cost, provider, tag."""
    llm, litellm_view = _one_llm_span_and_litellm_view(
        spy,
        tracekit_capture,
        lambda: litellm.text_completion(
            model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="some text"
        ),
    )
    assert llm.output == "some text"
    _assert_common_shape(llm, litellm_view)


def test_embedding_span_outputs_a_summary_not_vectors(
    spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """embedding: the output is a small summary dict; the vectors are not recorded."""
    llm, litellm_view = _one_llm_span_and_litellm_view(
        spy,
        tracekit_capture,
        lambda: litellm.embedding(
            model="text-embedding-3-small", input=["a", "b"], mock_response=[0.125, 0.375]
        ),
    )
    assert isinstance(llm.output, dict)
    assert "0.125" not in repr(llm.output)
    _assert_common_shape(llm, litellm_view)


# -- 4. no orphans: the Opik callback on, tracekit's spans going elsewhere ---------------


@tracekit.track
def orphan_agent(answer: str) -> str:
    response = litellm.completion(model=MODEL, messages=MESSAGES, mock_response=answer)
    return str(response.choices[0].message.content)


def _callback_traces_complete(server: OpikServer) -> bool:
    spans = wire_llm_spans(server)
    return bool(spans) and all(s.get("trace_id") in server.traces for s in spans)


def test_callback_is_not_pointed_at_a_trace_that_never_reaches_opik(
    opik_server: OpikServer,
    spy: StandardLoggingSpy,
    exported_capture: Capture,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """tracekit exports to SQLite while LiteLLM's Opik callback is on: the callback gets
    no current_span_data, tracekit keeps the LLM span under its parent in its own store,
    Opik receives no span without its trace, and tracekit warns once."""
    opik_server.reset()
    litellm.callbacks = ["opik", spy]
    db = tmp_path / "t.db"
    tracekit.configure(exporter="sqlite", db_path=db, flush_interval=0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="tracekit"):
            assert orphan_agent("first") == "first"
            assert orphan_agent("second") == "second"
            assert until(lambda: len(spy.events) == 2), spy.events
            assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    opik.flush_tracker()

    # LiteLLM's callback is not told about tracekit's (SQLite-only) trace.
    for metadata in spy.metadata.values():
        assert "current_span_data" not in (metadata.get("opik") or {}), metadata

    # tracekit logs the LLM spans itself, under their parents, where its spans go.
    agents = {s.id: s for s in exported_capture.spans if s.name == "orphan_agent"}
    calls = llm_spans(exported_capture)
    assert len(agents) == 2
    assert len(calls) == 2, [s.name for s in exported_capture.spans]
    assert {c.parent_id for c in calls} == set(agents)
    conn = _store.connect(db, create=False)
    try:
        for agent in agents.values():
            stored = {s.name: s for s in _store.load_spans(conn, agent.trace_id)}
            llm_names = [n for n, s in stored.items() if s.type == "llm"]
            assert len(llm_names) == 1, stored
            assert stored[llm_names[0]].parent_id == agent.id
    finally:
        conn.close()

    # What the callback logged on its own has its trace: no orphan spans in Opik.
    assert opik_server.wait_for(lambda: _callback_traces_complete(opik_server), timeout=10), (
        [(s.get("name"), s.get("trace_id")) for s in wire_llm_spans(opik_server)],
        list(opik_server.traces),
    )
    assert not [s for s in opik_server.spans.values() if s.get("name") == "orphan_agent"]

    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("tracekit")
        and r.levelno == logging.WARNING
        and "opik" in r.getMessage().lower()
        and "callback" in r.getMessage().lower()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


# -- 5. callback mode, sync: the LLM span the callback logs ends inside its parent ------


@tracekit.track
def sync_agent(answer: str) -> str:
    response = litellm.completion(model=MODEL, messages=MESSAGES, mock_response=answer)
    return str(response.choices[0].message.content)


def test_callback_logged_sync_llm_span_ends_within_its_parent(server: OpikServer) -> None:
    """Guard: a plain sync completion logged by LiteLLM's Opik callback ends in its parent."""
    litellm.callbacks = ["opik"]
    assert sync_agent("in time") == "in time"
    assert tracekit.flush(15)
    opik.flush_tracker()

    def arrived() -> bool:
        names = [s.get("name") for s in server.spans.values() if s.get("end_time")]
        return "sync_agent" in names and len(wire_llm_spans(server)) == 1

    assert server.wait_for(arrived, timeout=15), (server.traces, server.spans)
    (parent,) = [s for s in server.spans.values() if s["name"] == "sync_agent"]
    (llm,) = wire_llm_spans(server)
    assert llm["parent_span_id"] == parent["id"]
    parent_start, start, end, parent_end = within(llm, parent)
    assert parent_start <= start <= end <= parent_end, (
        (parent["start_time"], parent["end_time"]),
        (llm["start_time"], llm["end_time"]),
    )


@tracekit.track
def streaming_agent(answer: str) -> str:
    stream = litellm.completion(model=MODEL, messages=MESSAGES, mock_response=answer, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream)


@tracekit.track
async def async_streaming_agent(answer: str) -> str:
    stream = await litellm.acompletion(
        model=MODEL, messages=MESSAGES, mock_response=answer, stream=True
    )
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])


def test_callback_logged_streams_end_within_their_parent(server: OpikServer) -> None:
    """The callback stamps a stream's end when its thread gets to it; the span keeps the call's.

    The call's end is when the last chunk reached the consumer, before the
    tracked function returned.
    """
    litellm.callbacks = ["opik"]
    for _ in range(5):
        assert streaming_agent("a b") == "a b"

    async def main() -> None:
        for _ in range(5):
            assert await async_streaming_agent("c d") == "c d"

    asyncio.run(main())
    assert tracekit.flush(15)
    opik.flush_tracker()
    names = ("streaming_agent", "async_streaming_agent")

    def arrived() -> bool:
        return (
            len(wire_llm_spans(server)) == 10
            and sum(s["name"] in names and bool(s.get("end_time")) for s in server.spans.values())
            == 10
        )

    assert server.wait_for(arrived, timeout=15), server.spans
    parents = {s["id"]: s for s in server.spans.values() if s["name"] in names}
    for llm in wire_llm_spans(server):
        parent = parents[llm["parent_span_id"]]
        parent_start, start, end, parent_end = within(llm, parent)
        assert parent_start <= start <= end <= parent_end, (parent, llm)


# -- 6. the result is recorded as it was when it reached the caller ---------------------


def test_changing_the_response_after_the_call_changes_nothing_recorded(
    tracekit_capture: Capture,
) -> None:
    """Output, usage, cost and model are the call's, whatever the caller does to the object."""
    with tracekit.span("agent"):
        response = litellm.completion(model=MODEL, messages=MESSAGES, mock_response="original")
    response.choices[0].message.content = "changed"
    response.usage.prompt_tokens = 999_999
    response._hidden_params["response_cost"] = 123.0
    response.model = "something-else"
    (llm,) = llm_spans(tracekit_capture)
    assert llm.output == {"role": "assistant", "content": "original"}
    assert llm.usage is not None
    assert llm.usage["prompt_tokens"] == 10
    assert llm.total_cost is not None
    assert llm.total_cost < 1
    assert llm.model == MODEL


def test_clearing_a_streams_chunks_after_reading_changes_nothing_recorded(
    spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """A stream's span is what was read: the caller emptying `stream.chunks` later is too late."""
    with tracekit.span("agent"):
        stream = litellm.completion(model=MODEL, messages=MESSAGES, mock_response=TEXT, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == TEXT
    stream.chunks.clear()
    (llm,) = llm_spans(tracekit_capture)
    assert llm.output == {"role": "assistant", "content": TEXT}
    assert llm.usage is not None
    assert llm.usage["completion_tokens"] > 0


def test_messages_edited_after_the_call_are_recorded_as_sent(tracekit_capture: Capture) -> None:
    """The input is the messages as sent: the list and each message dict are copied."""
    messages = [{"role": "user", "content": "my real question"}]
    with tracekit.span("agent"):
        litellm.completion(model=MODEL, messages=messages, mock_response="ok")
    messages[0]["content"] = "rewritten after the call"
    messages.append({"role": "assistant", "content": "ok"})
    (llm,) = llm_spans(tracekit_capture)
    assert llm.input == {"messages": [{"role": "user", "content": "my real question"}]}


def test_a_streamed_text_completion_is_followed_to_its_last_chunk(
    spy: StandardLoggingSpy, tracekit_capture: Capture
) -> None:
    """`text_completion(stream=True)` wraps a chat stream: text, tokens and cost as LiteLLM's."""
    with tracekit.span("agent") as agent:
        stream = litellm.text_completion(
            model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="one two", stream=True
        )
        text = "".join(chunk.choices[0].text or "" for chunk in stream)
        last_chunk_read = time.time_ns()
    assert text == "one two"
    assert until(lambda: len(spy.events_under(agent.id)) == 1), spy.events
    (event,) = spy.events_under(agent.id)
    (llm,) = llm_spans(tracekit_capture)
    assert llm.name == "litellm.text_completion"
    assert llm.output == "one two"
    assert llm.usage is not None
    assert {k: llm.usage[k] for k in TOKEN_KEYS} == {k: event[k] for k in TOKEN_KEYS}
    assert llm.total_cost == pytest.approx(event["response_cost"])
    assert llm.end_time is not None
    assert llm.end_time <= datetime.fromtimestamp(last_chunk_read / 1e9, UTC)


def test_an_opik_exporter_object_counts_as_exporting_to_opik(opik_server: OpikServer) -> None:
    """configure(exporter=OpikExporter(...)): the callback logs under tracekit's span, once."""
    from tracekit.exporters._opik import OpikExporter

    opik_server.reset()
    litellm.callbacks = ["opik"]
    tracekit.configure(exporter=OpikExporter(5.0), flush_interval=0.05)
    try:
        assert sync_agent("via object") == "via object"
        assert tracekit.flush(15)
        opik.flush_tracker()
        assert opik_server.wait_for(lambda: len(wire_llm_spans(opik_server)) == 1, timeout=15)
        (parent,) = [s for s in opik_server.spans.values() if s["name"] == "sync_agent"]
        (llm,) = wire_llm_spans(opik_server)
        assert llm["parent_span_id"] == parent["id"]
        assert llm["name"] != "litellm.completion"  # the callback's, not a second one
    finally:
        tracekit.configure(exporter="none")
