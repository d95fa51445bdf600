"""What you set is what is recorded: explicit updates win over what tracekit captures.

Where Opik has the same call, the scenario also runs under `@opik.track`
against the in-suite Opik server, and both must record the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import opik
import pytest

import tracekit
from tests.opik_server import OpikServer
from tracekit._capture import Limits, Redactor, json_safe_converter
from tracekit._records import span_record
from tracekit.testing import Capture


@pytest.fixture
def server(opik_server: OpikServer) -> Iterator[OpikServer]:
    opik_server.reset()
    yield opik_server
    tracekit.configure(exporter="none")


def _opik_records(server: OpikServer, run: Callable[[], Any]) -> tuple[dict[str, Any], ...]:
    """The (span, trace) `@opik.track` sends for `run`, ids and times aside."""
    server.reset()
    run()
    opik.flush_tracker()
    assert server.wait_for(lambda: len(server.spans) == 1 and len(server.traces) == 1)
    (span,) = server.spans.values()
    (trace,) = server.traces.values()
    return span, trace


# -- output set by hand is kept over the return value -----------------------------------


def _answer_with_output(update: Callable[..., None]) -> Callable[[str], str | None]:
    def answer(question: str) -> str | None:
        update(output={"answer": "set by hand"})
        return None

    return answer


def test_an_output_set_by_hand_wins_over_the_return_value(
    tracekit_capture: Capture, server: OpikServer
) -> None:
    """update_current_span(output=X) then `return None`: X is recorded, as Opik records it."""
    traced = tracekit.track(_answer_with_output(tracekit.update_current_span))
    traced("q")
    assert tracekit_capture.named("answer").output == {"answer": "set by hand"}
    opik_answer = opik.track(name="answer")(
        _answer_with_output(opik.opik_context.update_current_span)
    )
    span, _ = _opik_records(server, lambda: opik_answer("q"))
    assert span["output"] == {"answer": "set by hand"}


def test_span_update_output_wins_for_generators_and_coroutines(
    tracekit_capture: Capture,
) -> None:
    """The rule holds for every kind of tracked callable."""
    import asyncio

    @tracekit.track
    def items() -> Iterator[str]:
        tracekit.update_current_span(output="summary")
        yield "a"
        yield "b"

    @tracekit.track
    async def coroutine() -> int:
        tracekit.update_current_span(output="kept")
        return 1

    assert list(items()) == ["a", "b"]
    assert asyncio.run(coroutine()) == 1
    assert tracekit_capture.named("items").output == "summary"
    assert tracekit_capture.named("coroutine").output == "kept"


# -- an input mapping merges into the captured arguments --------------------------------


def _with_more_input(update: Callable[..., None]) -> Callable[[int], int]:
    def add_context(x: int) -> int:
        update(input={"retrieved": ["doc-1"]})
        return x

    return add_context


def test_an_input_mapping_merges_into_the_captured_arguments(
    tracekit_capture: Capture, server: OpikServer
) -> None:
    """update_current_span(input={...}) adds to `x` on the span, as Opik does."""
    traced = tracekit.track(_with_more_input(tracekit.update_current_span))
    traced(3)
    expected = {"x": 3, "retrieved": ["doc-1"]}
    assert tracekit_capture.named("add_context").input == expected
    opik_traced = opik.track(name="add_context")(
        _with_more_input(opik.opik_context.update_current_span)
    )
    span, _ = _opik_records(server, lambda: opik_traced(3))
    assert span["input"] == expected


def test_an_input_that_is_not_a_mapping_replaces_the_arguments(
    tracekit_capture: Capture,
) -> None:
    @tracekit.track
    def summarize(text: str) -> None:
        tracekit.update_current_span(input="only this")

    summarize("long text")
    assert tracekit_capture.named("summarize").input == "only this"


def test_a_trace_input_mapping_merges_into_the_roots_arguments(
    tracekit_capture: Capture,
) -> None:
    """update_current_trace(input={...}) adds to what the root span was called with."""

    @tracekit.track
    def handle(request_id: str) -> None:
        tracekit.update_current_trace(input={"user": "u-1"})

    handle("r-9")
    (trace,) = tracekit_capture.traces
    assert trace.input == {"request_id": "r-9", "user": "u-1"}
    assert tracekit_capture.named("handle").input == {"request_id": "r-9"}


# -- inputs are recorded as they were at the call ---------------------------------------


def test_arguments_changed_after_the_call_are_recorded_as_they_were(
    tracekit_capture: Capture,
) -> None:
    """The chat pattern: answer(messages), then messages.append(reply) — and edits, sets, dicts."""

    @tracekit.track
    def answer(messages: list[dict[str, str]], options: dict[str, int], seen: set[str]) -> str:
        return "reply"

    messages = [{"role": "user", "content": "hi"}]
    options = {"temperature": 1}
    seen = {"a"}
    reply = answer(messages, options=options, seen=seen)
    messages.append({"role": "assistant", "content": reply})
    messages[0]["content"] = "edited later"
    options["temperature"] = 2
    seen.add("b")
    assert tracekit_capture.named("answer").input == {
        "messages": [{"role": "user", "content": "hi"}],
        "options": {"temperature": 1},
        "seen": {"a"},
    }


def test_the_callee_still_gets_the_callers_own_objects(tracekit_capture: Capture) -> None:
    """Copies are for the record only: a function that fills its argument fills the caller's."""

    @tracekit.track
    def fill(bucket: list[int]) -> None:
        bucket.append(1)

    bucket: list[int] = []
    fill(bucket)
    assert bucket == [1]
    assert tracekit_capture.named("fill").input == {"bucket": []}


# -- trace fields are the trace's -------------------------------------------------------

FIELDS = ("name", "input", "output", "tags", "metadata")


def _updates_span_and_trace(
    update_span: Callable[..., None], update_trace: Callable[..., None]
) -> Callable[[int], str]:
    def root(x: int) -> str:
        update_span(name="renamed", tags=["span-tag"], metadata={"span_meta": 1}, output={"set": 1})
        update_trace(tags=["trace-tag"], metadata={"trace_meta": 1})
        return "returned"

    return root


def test_span_updates_on_a_root_change_the_span_only_as_in_opik(server: OpikServer) -> None:
    """Renaming, tagging, annotating the root span leave its trace as created; as @opik.track.

    The trace's output stays the return value even when the span's output was set.
    """
    opik_root = opik.track(name="root")(
        _updates_span_and_trace(
            opik.opik_context.update_current_span, opik.opik_context.update_current_trace
        )
    )
    opik_span, opik_trace = _opik_records(server, lambda: opik_root(3))

    server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05)
    root = tracekit.track(name="root")(
        _updates_span_and_trace(tracekit.update_current_span, tracekit.update_current_trace)
    )
    assert root(3) == "returned"
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 1 and len(server.traces) == 1)
    (span,) = server.spans.values()
    (trace,) = server.traces.values()
    assert {k: trace.get(k) for k in FIELDS} == {k: opik_trace.get(k) for k in FIELDS}
    assert {k: span.get(k) for k in FIELDS} == {k: opik_span.get(k) for k in FIELDS}
    assert trace["name"] == "root"
    assert trace["output"] == {"output": "returned"}


# -- error_info set by hand, and the current trace --------------------------------------


def test_error_info_set_by_hand_reaches_the_span_and_the_wire(
    exported_capture: Capture, server: OpikServer
) -> None:
    """update_current_span(error_info=...) marks the span failed without an exception."""
    tracekit.configure(exporter="opik", flush_interval=0.05)

    @tracekit.track
    def guarded(text: str) -> str:
        tracekit.update_current_span(
            error_info={"exception_type": "PolicyViolation", "message": "blocked word"}
        )
        return "refused"

    assert guarded("bad") == "refused"
    expected = {"exception_type": "PolicyViolation", "message": "blocked word", "traceback": ""}
    assert exported_capture.named("guarded").error_info == expected
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.spans) == 1 and len(server.traces) == 1)
    (span,) = server.spans.values()
    (trace,) = server.traces.values()
    assert span["error_info"] == expected
    assert trace.get("error_info") is None  # the span's, not the trace's: as in Opik


@pytest.mark.parametrize(
    ("error_info", "fragment"),
    [
        ("boom", "expected a mapping"),
        ({"message": "no type"}, "exception_type must be a non-empty string"),
        ({"exception_type": ""}, "exception_type must be a non-empty string"),
    ],
)
def test_bad_error_info_is_refused_naming_what_is_accepted(
    tracekit_capture: Capture, error_info: Any, fragment: str
) -> None:
    with tracekit.span("s"), pytest.raises((TypeError, ValueError), match=fragment):
        tracekit.update_current_span(error_info=error_info)


def test_current_trace_gives_id_name_project_and_thread(tracekit_capture: Capture) -> None:
    """Opik's get_current_trace_data(): the active span's trace, wherever in it you are."""
    assert tracekit.current_trace() is None
    with tracekit.context(project_name="support", thread_id="conv-1"):

        @tracekit.track
        def inner() -> tracekit.TraceInfo | None:
            return tracekit.current_trace()

        @tracekit.track
        def handle() -> tuple[tracekit.TraceInfo | None, tracekit.TraceInfo | None]:
            before = inner()
            tracekit.update_current_trace(name="handled", thread_id="conv-2")
            return before, tracekit.current_trace()

        before, after = handle()
    root = tracekit_capture.named("handle")
    assert before == tracekit.TraceInfo(root.trace_id, "handle", "support", "conv-1")
    assert after == tracekit.TraceInfo(root.trace_id, "handled", "support", "conv-2")


# -- tracing turned off and on at run time ----------------------------------------------


def test_tracing_turned_off_creates_no_spans_and_on_again_does(tracekit_capture: Capture) -> None:
    """set_tracing_active(False): calls run as untraced (Opik: opik.set_tracing_active)."""
    import asyncio

    import litellm

    @tracekit.track
    def work(x: int) -> int:
        return x + 1

    @tracekit.track
    async def awork(x: int) -> int:
        return x + 1

    @tracekit.track
    def items() -> Iterator[int]:
        yield 1

    tracekit.instrument_litellm()
    tracekit.set_tracing_active(False)
    try:
        assert tracekit.is_tracing_active() is False
        assert work(1) == 2
        assert asyncio.run(awork(1)) == 2
        assert list(items()) == [1]
        litellm.completion(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="x"
        )
        assert tracekit_capture.spans == []
    finally:
        tracekit.set_tracing_active(True)
        tracekit.uninstrument_litellm()
    assert work(1) == 2
    assert [s.name for s in tracekit_capture.spans] == ["work"]


def test_set_tracing_active_takes_a_bool_only() -> None:
    with pytest.raises(TypeError, match=r"set_tracing_active\('no'\): expected True or False"):
        tracekit.set_tracing_active("no")  # type: ignore[arg-type]


def test_configure_enabled_false_turns_tracing_off_and_true_on(tracekit_capture: Capture) -> None:
    @tracekit.track
    def work() -> int:
        return 1

    tracekit.configure(exporter="none", enabled=False)
    try:
        assert tracekit.is_tracing_active() is False
        assert work() == 1
        assert tracekit_capture.spans == []
    finally:
        tracekit.configure(exporter="none", enabled=True)
    assert work() == 1
    assert [s.name for s in tracekit_capture.spans] == ["work"]
    with pytest.raises(TypeError, match=r"configure\(enabled='off'\): expected True or False"):
        tracekit.configure(enabled="off")  # type: ignore[arg-type]


def test_a_long_argument_is_copied_only_as_far_as_it_is_recorded(
    tracekit_capture: Capture,
) -> None:
    """Past max_collection_items nothing is recorded, so nothing is copied: the count stays."""
    tracekit.configure(exporter="none", max_collection_items=10)
    try:

        @tracekit.track
        def total(numbers: list[int]) -> int:
            return len(numbers)

        numbers = list(range(1_000_000))
        assert total(numbers) == 1_000_000
        numbers[0] = -1  # changed after the call: not what was passed
        span = tracekit_capture.named("total")
        copied = span.input["numbers"]
        assert len(copied) == 11  # the recorded items and one to say there are more
        assert copied[0] == 0
        record = span_record(span, json_safe_converter(Limits(max_items=10), Redactor()))
        assert record.input["numbers"][:10] == list(range(10))
        assert record.input["numbers"][10] == "...[truncated 999990 more items]"
    finally:
        tracekit.configure(exporter="none")
