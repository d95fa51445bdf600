"""One trace across services: Opik's distributed-trace headers, both ways.

Checked on the in-suite Opik server: tracekit → tracekit, tracekit →
`@opik.track` and `@opik.track` → tracekit, in one process and across two
processes over a real local HTTP hop.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import opik
import pytest

import tracekit
from tests.opik_server import OpikServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(opik_server: OpikServer) -> Iterator[OpikServer]:
    opik_server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05)
    yield opik_server
    tracekit.configure(exporter="none")


def _elsewhere(run: Callable[[], Any]) -> Any:
    """Run `run` as another service would: in a fresh context, with no active span."""
    return contextvars.Context().run(run)


def _by_name(server: OpikServer) -> dict[str, dict[str, Any]]:
    return {span["name"]: span for span in server.spans.values()}


def test_distributed_headers_name_the_active_span_and_are_empty_without_one() -> None:
    assert tracekit.distributed_headers() == {}
    with tracekit.span("s") as s:
        assert tracekit.distributed_headers() == {
            "opik_trace_id": s.trace_id,
            "opik_parent_span_id": s.id,
        }


def test_a_continued_trace_nests_the_services_spans_under_the_caller(server: OpikServer) -> None:
    @tracekit.track
    def handle() -> str:
        return "ok"

    def service(headers: dict[str, str]) -> str:
        with tracekit.continue_trace(headers):
            assert tracekit.current_span() is None  # the caller's span is not ours to update
            return handle()

    @tracekit.track
    def caller() -> str:
        headers = tracekit.distributed_headers()
        return str(_elsewhere(lambda: service(headers)))

    assert caller() == "ok"
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 2)
    spans = _by_name(server)
    assert spans["handle"]["trace_id"] == spans["caller"]["trace_id"]
    assert spans["handle"]["parent_span_id"] == spans["caller"]["id"]
    assert list(server.traces) == [spans["caller"]["trace_id"]]  # one trace record: the caller's


@pytest.mark.anyio
async def test_continue_trace_works_with_async_with(server: OpikServer) -> None:
    with tracekit.span("caller") as caller:
        headers = tracekit.distributed_headers()

    async def service() -> None:
        async with tracekit.continue_trace(headers):
            with tracekit.span("handle"):
                pass

    await service()
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 2)
    assert _by_name(server)["handle"]["parent_span_id"] == caller.id


def test_header_names_match_without_case_dash_or_underscore(server: OpikServer) -> None:
    with tracekit.span("caller") as caller:
        pass
    headers = [
        (b"Opik-Trace-Id", caller.trace_id.encode()),
        ("OPIK-PARENT-SPAN-ID", caller.id.upper()),
    ]
    with tracekit.continue_trace(headers), tracekit.span("handle"):
        pass
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 2)
    assert _by_name(server)["handle"]["parent_span_id"] == caller.id


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        "opik_trace_id=x",
        {"opik_trace_id": "not-a-uuid", "opik_parent_span_id": "nope"},
        {"opik_trace_id": "6f1c1a3e-4b1d-4c8e-9a55-5a1a6e0b9c11", "opik_parent_span_id": 3},
        {"opik_trace_id": "6f1c1a3e-4b1d-4c8e-9a55-5a1a6e0b9c11"},  # a UUIDv4, half there
    ],
)
def test_unusable_headers_start_a_new_trace_with_one_warning(
    headers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with tracekit.testing.capture() as captured, caplog.at_level(logging.WARNING, "tracekit"):
        for _ in range(2):
            with tracekit.continue_trace(headers), tracekit.span("handle"):
                pass
    assert [span.is_root for span in captured.spans] == [True, True]
    warnings = [r for r in caplog.records if "continue_trace" in r.getMessage()]
    assert len(warnings) == 1


def test_a_project_can_be_given_and_defaults_to_the_services_own(server: OpikServer) -> None:
    with tracekit.span("caller") as caller:
        headers = tracekit.distributed_headers()
    with tracekit.continue_trace(headers, project_name="caller-project"), tracekit.span("given"):
        pass
    with (
        tracekit.context(project_name="service-project"),
        tracekit.continue_trace(headers),
        tracekit.span("from-context"),
    ):
        pass
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 3)
    spans = _by_name(server)
    assert spans["given"]["project_name"] == "caller-project"
    assert spans["from-context"]["project_name"] == "service-project"
    assert spans["given"]["trace_id"] == caller.trace_id


def test_update_current_trace_in_a_continued_trace_warns_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tracekit.span("caller"):
        headers = tracekit.distributed_headers()
    with (
        tracekit.testing.capture() as captured,
        caplog.at_level(logging.WARNING, "tracekit"),
        tracekit.continue_trace(headers),
        tracekit.span("handle"),
    ):
        tracekit.update_current_trace(name="renamed")
        info = tracekit.current_trace()
    assert info is not None
    assert (info.id, info.name) == (headers["opik_trace_id"], None)
    assert captured.traces == []
    assert any("continued from another service" in r.getMessage() for r in caplog.records)


def test_tracekit_headers_continue_in_an_opik_track_service(server: OpikServer) -> None:
    @opik.track(name="opik-handle")
    def handle() -> str:
        return "ok"

    @tracekit.track
    def caller() -> str:
        headers = tracekit.distributed_headers()
        return str(_elsewhere(lambda: handle(opik_distributed_trace_headers=headers)))

    assert caller() == "ok"
    assert tracekit.flush(10)
    opik.flush_tracker()
    assert server.wait_for(lambda: len(server.spans) == 2)
    spans = _by_name(server)
    assert spans["opik-handle"]["parent_span_id"] == spans["caller"]["id"]
    assert spans["opik-handle"]["trace_id"] == spans["caller"]["trace_id"]
    assert list(server.traces) == [spans["caller"]["trace_id"]]


def test_opik_track_headers_continue_in_a_tracekit_service(server: OpikServer) -> None:
    @tracekit.track
    def handle() -> str:
        return "ok"

    def service(headers: dict[str, str]) -> str:
        with tracekit.continue_trace(headers):
            return handle()

    @opik.track(name="opik-caller")
    def caller() -> str:
        headers = opik.opik_context.get_distributed_trace_headers()
        return str(_elsewhere(lambda: service(dict(headers))))

    assert caller() == "ok"
    opik.flush_tracker()
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 2 and len(server.traces) == 1)
    spans = _by_name(server)
    assert spans["handle"]["parent_span_id"] == spans["opik-caller"]["id"]
    assert spans["handle"]["trace_id"] == spans["opik-caller"]["trace_id"]
    assert list(server.traces) == [spans["opik-caller"]["trace_id"]]


# -- across two processes, over HTTP -------------------------------------------------------


@contextlib.contextmanager
def _service_process(kind: str, opik_server: OpikServer) -> Iterator[str]:
    """The receiving service (tests/distributed_service.py) in its own process: its URL."""
    env = {**os.environ, "OPIK_URL_OVERRIDE": opik_server.url, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.distributed_service", kind],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}/work"
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()


@pytest.fixture(params=["tracekit", "opik"])
def service(request: pytest.FixtureRequest, opik_server: OpikServer) -> Iterator[str]:
    with _service_process(request.param, opik_server) as url:
        yield url


def test_one_tree_across_two_processes(server: OpikServer, service: str) -> None:
    """A tracekit caller → a tracekit or @opik.track service over HTTP: one trace, nested."""

    @tracekit.track
    def caller() -> str:
        return httpx.get(service, headers=tracekit.distributed_headers(), timeout=60).text

    assert caller().startswith("done by")
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 2 and len(server.traces) == 1)
    spans = _by_name(server)
    assert spans["handle"]["parent_span_id"] == spans["caller"]["id"]
    assert spans["handle"]["trace_id"] == spans["caller"]["trace_id"]
    assert list(server.traces) == [spans["caller"]["trace_id"]]


@pytest.fixture
def tracekit_service(opik_server: OpikServer) -> Iterator[str]:
    with _service_process("tracekit", opik_server) as url:
        yield url


def test_an_opik_track_caller_continues_in_a_tracekit_process(
    server: OpikServer, tracekit_service: str
) -> None:
    @opik.track(name="opik-caller")
    def caller() -> str:
        headers = opik.opik_context.get_distributed_trace_headers()
        return httpx.get(tracekit_service, headers=dict(headers), timeout=60).text

    assert caller() == "done by tracekit"
    opik.flush_tracker()
    assert server.wait_for(lambda: len(server.spans) == 2 and len(server.traces) == 1)
    spans = _by_name(server)
    assert spans["handle"]["parent_span_id"] == spans["opik-caller"]["id"]
    assert list(server.traces) == [spans["opik-caller"]["trace_id"]]


def test_http_server_header_objects_are_read(server: OpikServer) -> None:
    """`http.server` hands its handler an `email.message.Message`: not a Mapping, has items()."""
    import email.message

    with tracekit.span("caller") as caller:
        message = email.message.Message()
        for name, value in tracekit.distributed_headers().items():
            message[name] = value
    with tracekit.continue_trace(message), tracekit.span("handle"):
        pass
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 2)
    assert _by_name(server)["handle"]["parent_span_id"] == caller.id


# -- found by attacking it ---------------------------------------------------------------


def _remote_headers() -> dict[str, str]:
    with tracekit.span("remote caller"):
        return tracekit.distributed_headers()


def test_blocks_exited_out_of_order_leave_no_stand_in_active() -> None:
    first = tracekit.continue_trace(_remote_headers())
    second = tracekit.continue_trace(_remote_headers())
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    with tracekit.testing.capture() as captured, tracekit.span("after"):
        pass
    assert captured.named("after").is_root


def test_a_span_that_outlives_the_block_returns_to_what_was_active_before() -> None:
    with tracekit.span("service request") as request:
        block = tracekit.continue_trace(_remote_headers())
        block.__enter__()
        inner = tracekit.span("inner")
        inner.__enter__()
        block.__exit__(None, None, None)
        inner.__exit__(None, None, None)
        assert tracekit.current_span() is request


@pytest.mark.parametrize("valid", [True, False])
def test_entering_one_block_twice_is_refused(valid: bool) -> None:
    block = tracekit.continue_trace(_remote_headers() if valid else {"opik_trace_id": "bad"})
    with block, pytest.raises(RuntimeError, match="entered twice"), block:
        pass


def test_bad_headers_inside_a_span_leave_spans_under_it(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing is joined: spans go where they would without the block (documented)."""
    with (
        tracekit.testing.capture() as captured,
        tracekit.span("outer") as outer,
        tracekit.continue_trace({"opik_trace_id": "bad"}),
        tracekit.span("inner"),
    ):
        pass
    assert captured.named("inner").parent_id == outer.id


def test_log_feedback_in_a_continued_trace_files_the_score_in_its_project(
    server: OpikServer,
) -> None:
    headers = _remote_headers()
    with tracekit.continue_trace(headers, project_name="svc"), tracekit.span("handle"):
        trace = tracekit.current_trace()
        assert trace is not None
        tracekit.log_feedback(trace.id, "q", 0.5)
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.trace_scores) == 1)
    (score,) = server.trace_scores
    assert (score["id"], score["project_name"]) == (headers["opik_trace_id"], "svc")


def test_a_hostile_header_value_never_raises() -> None:
    class Hostile(str):
        def strip(self, chars: str | None = None) -> str:
            raise RuntimeError("boom")

    with tracekit.testing.capture() as captured:
        headers = {"opik_trace_id": Hostile("x"), "opik_parent_span_id": Hostile("y")}
        with tracekit.continue_trace(headers), tracekit.span("handle"):
            pass
    assert captured.named("handle").is_root


def test_a_tracked_generator_keeps_its_block_to_its_own_body() -> None:
    headers = _remote_headers()

    @tracekit.track
    def items() -> Iterator[str | None]:
        with tracekit.continue_trace(headers):
            trace = tracekit.current_trace()
            yield trace.id if trace else None
            yield None

    with tracekit.span("consumer") as consumer:
        seen = []
        for inside in items():
            outside = tracekit.current_trace()
            seen.append((inside, outside.id if outside else None))
    assert seen[0] == (headers["opik_trace_id"], consumer.trace_id)
    assert seen[1][1] == consumer.trace_id
