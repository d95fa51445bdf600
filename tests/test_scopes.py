"""`tracekit.span()` blocks and `tracekit.context()` defaults."""

from __future__ import annotations

import itertools

import pytest

import tracekit
from tracekit import _hooks
from tracekit._span import Span
from tracekit.testing import Capture


def test_span_block_is_active_inside_and_restored_after(tracekit_capture: Capture) -> None:
    """Inside `with span()` the new span is current; after it, the outer one is again."""
    with tracekit.span("outer") as outer:
        with tracekit.span("inner", type="tool", input={"x": 1}) as inner:
            assert tracekit.current_span() is inner
        assert tracekit.current_span() is outer
    assert tracekit.current_span() is None
    assert inner.parent_id == outer.id
    assert (inner.type, inner.input) == ("tool", {"x": 1})


@pytest.mark.anyio
async def test_async_with_span_nests_like_with(tracekit_capture: Capture) -> None:
    """`async with span()` opens a child of the active span and restores it on exit."""
    async with tracekit.span("outer") as outer:
        async with tracekit.span("inner") as inner:
            assert tracekit.current_span() is inner
        assert tracekit.current_span() is outer
    assert inner.parent_id == outer.id


def test_span_block_records_an_exception_and_lets_it_through(tracekit_capture: Capture) -> None:
    """An exception leaving the block lands in error_info and propagates unchanged."""
    error = ValueError("boom")
    with pytest.raises(ValueError, match="boom") as raised, tracekit.span("s") as s:
        raise error
    assert raised.value is error
    assert s.error_info is not None
    assert s.error_info["exception_type"] == "ValueError"
    assert s.error_info["message"] == "boom"
    assert "raise error" in s.error_info["traceback"]


def test_span_rejects_unknown_type_naming_the_accepted_ones() -> None:
    """span(type="bogus") raises a ValueError listing the span types."""
    with pytest.raises(ValueError, match=r"'bogus'.*'general', 'llm', 'tool', 'guardrail'"):
        tracekit.span("s", type="bogus")  # type: ignore[arg-type]


def test_span_rejects_a_non_str_name() -> None:
    """span(123) raises a TypeError naming the bad value."""
    with pytest.raises(TypeError, match="123"):
        tracekit.span(123)  # type: ignore[arg-type]


def test_context_defaults_reach_every_span_inside(tracekit_capture: Capture) -> None:
    """project_name, thread_id, tags and metadata of context() apply to spans created inside."""
    with (
        tracekit.context(project_name="p", thread_id="t-1", tags=["ctx"], metadata={"env": "dev"}),
        tracekit.span("root", tags=["own"]) as root,
        tracekit.span("child") as child,
    ):
        pass
    with tracekit.span("outside") as outside:
        pass
    for span in (root, child):
        assert span.project_name == "p"
        assert span.thread_id == "t-1"
        assert span.metadata == {"env": "dev"}
    assert root.tags == ["ctx", "own"]
    assert child.tags == ["ctx"]
    assert (outside.project_name, outside.thread_id, outside.tags) == (None, None, None)
    (trace, _) = tracekit_capture.traces
    assert (trace.project_name, trace.thread_id) == ("p", "t-1")


def test_nested_contexts_add_to_the_outer_one(tracekit_capture: Capture) -> None:
    """An inner context() keeps the outer tags and metadata and overrides what it sets."""
    with (
        tracekit.context(project_name="p", tags=["a"], metadata={"x": 1, "y": 1}),
        tracekit.context(tags=["b"], metadata={"y": 2}),
        tracekit.span("s") as s,
    ):
        pass
    assert s.project_name == "p"
    assert s.tags == ["a", "b"]
    assert s.metadata == {"x": 1, "y": 2}


def test_children_stay_in_their_traces_project(tracekit_capture: Capture) -> None:
    """A span created under a trace goes to the trace's project, whatever context says."""
    with (
        tracekit.context(project_name="outer"),
        tracekit.span("root") as root,
        tracekit.context(project_name="other"),
        tracekit.span("child") as child,
    ):
        pass
    assert root.project_name == child.project_name == "outer"


@pytest.mark.anyio
async def test_async_with_context_sets_defaults(tracekit_capture: Capture) -> None:
    """`async with context()` works like `with context()`."""
    async with tracekit.context(thread_id="t"), tracekit.span("s") as s:
        pass
    assert s.thread_id == "t"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"project_name": 1}, "project_name=1"),
        ({"thread_id": 2.5}, "thread_id=2.5"),
        ({"tags": "single"}, "tags='single'"),
        ({"metadata": ["not", "a", "dict"]}, "metadata="),
    ],
)
def test_context_rejects_bad_argument_types(kwargs: dict[str, object], fragment: str) -> None:
    """context() raises a TypeError naming the bad argument and value."""
    with pytest.raises(TypeError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        tracekit.context(**kwargs)  # type: ignore[arg-type]


def _exit(block: tracekit.span) -> None:
    block.__exit__(None, None, None)


def _enter_a_and_b_exit_a_first() -> tuple[Span, Span]:
    """Enter A, then B inside it; exit A, then B. Returns their spans."""
    a, b = tracekit.span("A"), tracekit.span("B")
    span_a, span_b = a.__enter__(), b.__enter__()
    _exit(a)
    _exit(b)
    return span_a, span_b


def test_outer_block_exited_first_leaves_no_span_active(tracekit_capture: Capture) -> None:
    """Exiting A before B (B opened inside A) leaves no span active and keeps the parents."""
    span_a, span_b = _enter_a_and_b_exit_a_first()
    assert tracekit.current_span() is None
    with tracekit.span("after") as after:
        pass
    assert after.parent_id is None
    assert (span_a.parent_id, span_b.parent_id) == (None, span_a.id)


def test_inner_block_stays_active_after_its_outer_block_exits(tracekit_capture: Capture) -> None:
    """While B is open, exiting its outer block A keeps B active: new spans nest under B."""
    a, b = tracekit.span("A"), tracekit.span("B")
    a.__enter__()
    span_b = b.__enter__()
    _exit(a)
    assert tracekit.current_span() is span_b
    with tracekit.span("inside B") as inside:
        pass
    _exit(b)
    assert inside.parent_id == span_b.id


def test_out_of_order_exits_inside_an_open_span_return_to_it(tracekit_capture: Capture) -> None:
    """With O > A > B, exiting A then B makes O active again; new spans nest under O."""
    with tracekit.span("O") as span_o:
        span_a, span_b = _enter_a_and_b_exit_a_first()
        assert tracekit.current_span() is span_o
        with tracekit.span("after") as after:
            pass
    assert after.parent_id == span_o.id
    assert (span_a.parent_id, span_b.parent_id) == (span_o.id, span_a.id)


def test_exiting_a_block_leaves_a_later_block_active(tracekit_capture: Capture) -> None:
    """B exiting while C (opened after A, B's parent, exited) is active leaves C active."""
    a, b, c = tracekit.span("A"), tracekit.span("B"), tracekit.span("C")
    a.__enter__()
    span_b = b.__enter__()
    _exit(a)
    span_c = c.__enter__()
    _exit(b)
    assert tracekit.current_span() is span_c
    _exit(c)
    assert tracekit.current_span() is None
    assert span_c.parent_id == span_b.id


@pytest.mark.parametrize(
    "order",
    [
        order
        for order in itertools.permutations(range(3))
        if order != (2, 1, 0)  # the in-order exit is covered above
    ],
)
def test_any_exit_order_keeps_the_innermost_open_block_active(
    tracekit_capture: Capture, order: tuple[int, ...]
) -> None:
    """After each exit of three nested blocks, in any order, the innermost open one is active."""
    blocks = [tracekit.span(name) for name in "ABC"]
    spans = [block.__enter__() for block in blocks]
    still_open = [0, 1, 2]
    for index in order:
        _exit(blocks[index])
        still_open.remove(index)
        expected = spans[still_open[-1]] if still_open else None
        assert tracekit.current_span() is expected
    assert [s.parent_id for s in spans] == [None, spans[0].id, spans[1].id]


def test_out_of_order_exits_never_activate_another_tracers_span(
    tracekit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If an integration parents A to another tracer's span, exiting A then B leaves none active."""
    other = Span.foreign("opik-span", "opik-trace", None, None)
    monkeypatch.setattr(_hooks, "choose_parent", (lambda parent: parent or other,))
    span_a, span_b = _enter_a_and_b_exit_a_first()
    assert tracekit.current_span() is None
    assert (span_a.parent_id, span_b.parent_id) == ("opik-span", span_a.id)


@pytest.mark.anyio
async def test_async_outer_block_exited_first_leaves_no_span_active(
    tracekit_capture: Capture,
) -> None:
    """`async with` blocks A > B exited A first leave no span active and keep the parents."""
    a, b = tracekit.span("A"), tracekit.span("B")
    span_a = await a.__aenter__()
    span_b = await b.__aenter__()
    await a.__aexit__(None, None, None)
    assert tracekit.current_span() is span_b
    await b.__aexit__(None, None, None)
    assert tracekit.current_span() is None
    async with tracekit.span("after") as after:
        pass
    assert after.parent_id is None
    assert (span_a.parent_id, span_b.parent_id) == (None, span_a.id)


@pytest.mark.anyio
async def test_async_out_of_order_exits_inside_an_open_span_return_to_it(
    tracekit_capture: Capture,
) -> None:
    """With `async with` O > A > B, exiting A then B makes O active again."""
    async with tracekit.span("O") as span_o:
        a, b = tracekit.span("A"), tracekit.span("B")
        span_a = await a.__aenter__()
        span_b = await b.__aenter__()
        await a.__aexit__(None, None, None)
        await b.__aexit__(None, None, None)
        assert tracekit.current_span() is span_o
        async with tracekit.span("after") as after:
            pass
    assert after.parent_id == span_o.id
    assert (span_a.parent_id, span_b.parent_id) == (span_o.id, span_a.id)


def test_two_integrations_on_one_hook_point_both_run(tracekit_capture: Capture) -> None:
    """Hook points are lists: a second integration adds to them, it does not replace."""
    kept: list[str] = []

    def keep_first(result: object, span: Span, capture_output: bool) -> bool:
        kept.append("first")
        return False

    def keep_second(result: object, span: Span, capture_output: bool) -> bool:
        kept.append("second")
        return result == "stream"

    @tracekit.track
    def returns(value: str) -> str:
        return value

    _hooks.add("end_with_result", keep_first)
    _hooks.add("end_with_result", keep_second)
    _hooks.add("end_with_result", keep_second)  # once only
    try:
        returns("stream")
        returns("value")
    finally:
        _hooks.remove("end_with_result", keep_first)
        _hooks.remove("end_with_result", keep_second)
    assert kept == ["first", "second", "first", "second"]
    # The span kept open by the second integration is not ended by the core.
    assert [s.output for s in tracekit_capture.spans] == ["value"]
    assert _hooks.end_with_result == ()
