"""`@tracekit.track` on plain and async functions, methods, and its options and misuse."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import tracekit
from tracekit.testing import Capture, capture


@tracekit.track
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@tracekit.track(name="custom", type="tool", tags=["t"], metadata={"m": 1}, project_name="proj")
def configured(x: int) -> int:
    return x


def test_a_call_makes_one_root_span_with_inputs_and_output(tracekit_capture: Capture) -> None:
    """A tracked call with no active span is one root span: inputs by name, defaults, output."""
    assert add(1) == 3
    (span,) = tracekit_capture.spans
    assert span.name == "add"
    assert span.type == "general"
    assert span.parent_id is None
    assert span.input == {"a": 1, "b": 2}
    assert span.output == 3
    assert span.error_info is None


def test_nested_calls_nest_and_restore_the_stack(tracekit_capture: Capture) -> None:
    """A tracked call inside another is its child; afterwards the outer span is current."""

    @tracekit.track
    def outer() -> Any:
        add(1, 1)
        return tracekit.current_span()

    current_after_inner = outer()
    inner, outer_span = tracekit_capture.spans
    assert inner.parent_id == outer_span.id
    assert current_after_inner is outer_span


def test_options_set_name_type_tags_metadata_and_project(tracekit_capture: Capture) -> None:
    """name, type, tags, metadata and project_name given to track() land on the span."""
    configured(5)
    (span,) = tracekit_capture.spans
    assert (span.name, span.type, span.tags, span.metadata) == ("custom", "tool", ["t"], {"m": 1})
    assert span.project_name == "proj"


def test_capture_flags_turn_input_and_output_off(tracekit_capture: Capture) -> None:
    """capture_input=False and capture_output=False leave input and output empty."""

    @tracekit.track(capture_input=False, capture_output=False)
    def secret(token: str) -> str:
        return token * 2

    assert secret("abc") == "abcabc"
    (span,) = tracekit_capture.spans
    assert span.input is None
    assert span.output is None


def test_ignore_arguments_leaves_those_names_out(tracekit_capture: Capture) -> None:
    """Arguments named in ignore_arguments never reach the span's input."""

    @tracekit.track(ignore_arguments=["api_key"])
    def call(prompt: str, api_key: str = "default") -> str:
        return prompt

    call("hi", api_key="sk-123")
    call("there")
    assert [s.input for s in tracekit_capture.spans] == [{"prompt": "hi"}, {"prompt": "there"}]


def test_var_args_and_kwargs_are_captured_by_name(tracekit_capture: Capture) -> None:
    """Extra positionals go under the *args name; **kwargs are merged into the inputs."""

    @tracekit.track
    def f(a: int, *rest: int, key: str = "k", **extra: Any) -> None:
        return None

    f(1, 2, 3, key="x", flag=True)
    (span,) = tracekit_capture.spans
    assert span.input == {"a": 1, "rest": (2, 3), "key": "x", "flag": True}


def test_return_value_is_returned_unchanged() -> None:
    """The caller gets the very object the function returned."""
    marker = object()

    @tracekit.track
    def f() -> object:
        return marker

    assert f() is marker


def test_exception_is_recorded_and_reraised_unchanged(tracekit_capture: Capture) -> None:
    """The same exception object reaches the caller, its traceback still starting in the body."""
    error = KeyError("missing")

    @tracekit.track
    def fails() -> None:
        raise error

    with pytest.raises(KeyError) as raised:
        fails()
    assert raised.value is error
    frames = [frame.name for frame in raised.traceback]
    assert frames[-1] == "fails"
    (span,) = tracekit_capture.spans
    assert span.error_info is not None
    assert span.error_info["exception_type"] == "KeyError"
    assert "raise error" in span.error_info["traceback"]
    assert tracekit.current_span() is None


def test_base_exception_ends_the_span_and_passes_through(tracekit_capture: Capture) -> None:
    """KeyboardInterrupt ends the span without an error_info and propagates."""

    @tracekit.track
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    (span,) = tracekit_capture.spans
    assert span.error_info is None
    assert span.metadata == {"interrupted_by": "KeyboardInterrupt"}
    assert span.end_time is not None


def test_wrapper_keeps_name_doc_signature_and_kind() -> None:
    """The decorated function answers introspection like the original."""
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2) -> 'int'"
    assert not inspect.iscoroutinefunction(add)
    assert not inspect.isgeneratorfunction(add)


async def _coro(x: int) -> int:
    await anyio.sleep(0)
    return x


def test_async_wrapper_is_still_a_coroutine_function() -> None:
    """iscoroutinefunction holds for a tracked async def (inspect and asyncio)."""
    traced = tracekit.track(_coro)
    assert inspect.iscoroutinefunction(traced)
    if sys.version_info < (3, 14):
        assert asyncio.iscoroutinefunction(traced)
    assert traced.__name__ == "_coro"


@pytest.mark.anyio
async def test_async_call_nests_awaited_work(tracekit_capture: Capture) -> None:
    """A tracked coroutine's span is the parent of what it awaits, on asyncio and trio."""

    @tracekit.track
    async def outer(x: int) -> int:
        return add(x) + await tracekit.track(_coro)(x)

    assert await outer(1) == 4
    inner_add, inner_coro, outer_span = tracekit_capture.spans
    assert outer_span.input == {"x": 1}
    assert outer_span.output == 4
    assert inner_add.parent_id == outer_span.id
    assert inner_coro.parent_id == outer_span.id
    assert tracekit.current_span() is None


@pytest.mark.anyio
async def test_async_exception_is_recorded_and_reraised(tracekit_capture: Capture) -> None:
    """An exception from a tracked coroutine is recorded and reaches the awaiter unchanged."""
    error = RuntimeError("async boom")

    @tracekit.track
    async def fails() -> None:
        raise error

    with pytest.raises(RuntimeError) as raised:
        await fails()
    assert raised.value is error
    (span,) = tracekit_capture.spans
    assert span.error_info is not None
    assert span.error_info["message"] == "async boom"


def test_asyncio_cancellation_ends_the_span_and_propagates(tracekit_capture: Capture) -> None:
    """A cancelled tracked coroutine ends its span, marked, and CancelledError propagates."""

    @tracekit.track
    async def waits_forever() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(waits_forever())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (span,) = tracekit_capture.spans
    assert span.metadata == {"interrupted_by": "CancelledError"}
    assert span.error_info is None


def test_trio_cancellation_ends_the_span_and_propagates(tracekit_capture: Capture) -> None:
    """A tracked coroutine cancelled by a trio cancel scope ends its span, marked."""
    import trio

    @tracekit.track
    async def sleeps() -> None:
        await trio.sleep_forever()

    async def main() -> None:
        with trio.move_on_after(0.01):
            await sleeps()

    trio.run(main)
    (span,) = tracekit_capture.spans
    assert span.metadata == {"interrupted_by": "Cancelled"}


class Service:
    """A class with every kind of method, tracked above and below the method decorators."""

    def __init__(self, base: int) -> None:
        self.base = base

    @tracekit.track
    def method(self, x: int) -> int:
        return self.base + x

    @tracekit.track
    @classmethod
    def class_above(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @classmethod
    @tracekit.track
    def class_below(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @tracekit.track
    @staticmethod
    def static_above(x: int) -> int:
        return x * 2

    @staticmethod
    @tracekit.track
    def static_below(x: int) -> int:
        return x * 3

    @tracekit.track
    async def async_method(self, x: int) -> int:
        return self.base * x


class SubService(Service):
    pass


def test_instance_method_binds_self_and_leaves_it_out_of_inputs(
    tracekit_capture: Capture,
) -> None:
    """A tracked method sees its instance; the span's input has no `self`."""
    service = Service(10)
    assert service.method(1) == 11
    assert Service.method(service, 2) == 12
    assert [s.input for s in tracekit_capture.spans] == [{"x": 1}, {"x": 2}]
    assert [s.name for s in tracekit_capture.spans] == ["method", "method"]


@pytest.mark.parametrize("name", ["class_above", "class_below"])
def test_classmethod_binds_cls_either_side(tracekit_capture: Capture, name: str) -> None:
    """@track above or below @classmethod: cls is bound (subclass too) and not captured."""
    assert getattr(SubService, name)(1) == "SubService:1"
    assert getattr(Service(0), name)(2) == "Service:2"
    assert [s.input for s in tracekit_capture.spans] == [{"x": 1}, {"x": 2}]
    assert {s.name for s in tracekit_capture.spans} == {name}


@pytest.mark.parametrize(("name", "factor"), [("static_above", 2), ("static_below", 3)])
def test_staticmethod_works_either_side(tracekit_capture: Capture, name: str, factor: int) -> None:
    """@track above or below @staticmethod: called on class and instance, inputs complete."""
    assert getattr(Service, name)(5) == 5 * factor
    assert getattr(Service(0), name)(6) == 6 * factor
    assert [s.input for s in tracekit_capture.spans] == [{"x": 5}, {"x": 6}]


@pytest.mark.anyio
async def test_async_method_binds_self(tracekit_capture: Capture) -> None:
    """A tracked async method gets its instance and captures only its own arguments."""
    assert await Service(3).async_method(2) == 6
    (span,) = tracekit_capture.spans
    assert span.input == {"x": 2}


def test_callable_object_is_traced(tracekit_capture: Capture) -> None:
    """An instance with __call__ can be tracked; the span is named after its class."""

    class Scorer:
        def __call__(self, text: str) -> int:
            return len(text)

    scorer = tracekit.track(Scorer())
    assert scorer("four") == 4
    (span,) = tracekit_capture.spans
    assert span.name == "Scorer"
    assert span.input == {"text": "four"}


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"type": "bogus"}, ValueError, r"'bogus'.*'general', 'llm', 'tool', 'guardrail'"),
        ({"name": 123}, TypeError, r"name=123.*str or None"),
        ({"tags": "one"}, TypeError, r"tags='one'.*list of str"),
        ({"tags": [1]}, TypeError, r"1 \(int\)"),
        ({"metadata": [1]}, TypeError, r"metadata=\[1\].*mapping"),
        ({"capture_input": "yes"}, TypeError, r"capture_input='yes'.*True or False"),
        ({"project_name": 7}, TypeError, r"project_name=7"),
    ],
)
def test_bad_options_raise_at_decoration_time(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    """Bad option values raise before any call, naming the value and what is accepted."""
    with pytest.raises(error, match=fragment):
        tracekit.track(**kwargs)


def test_a_non_callable_is_rejected() -> None:
    """track(42) raises a TypeError naming the value and pointing at name=."""
    with pytest.raises(TypeError, match=r"got 42 \(int\).*@track\(name=\.\.\.\)"):
        tracekit.track(42)  # type: ignore[call-overload]


def test_a_string_as_first_argument_is_rejected() -> None:
    """track("name") raises: the span name goes in name=."""
    with pytest.raises(TypeError, match=r"'my-span' \(str\)"):
        tracekit.track("my-span")  # type: ignore[call-overload]


def test_ignore_arguments_naming_no_parameter_warns_once_and_still_works(
    tracekit_capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    """Code ported from Opik must not fail at import: one warning listing the parameters."""
    with caplog.at_level(logging.WARNING, logger="tracekit"):

        @tracekit.track(ignore_arguments=["nope", "b"])
        def f(a: int, b: int) -> None:
            return None

    (warning,) = [r.getMessage() for r in caplog.records if "ignore_arguments" in r.getMessage()]
    assert "'nope'" in warning
    assert "its parameters are a, b" in warning
    f(1, 2)
    assert tracekit_capture.named("f").input == {"a": 1}


def test_a_partial_is_named_after_its_function(tracekit_capture: Capture) -> None:
    def greet(greeting: str, name: str) -> str:
        return f"{greeting}, {name}"

    hello = tracekit.track(functools.partial(greet, "hello"))
    assert hello("ada") == "hello, ada"
    assert tracekit_capture.spans[0].name == "greet"


def test_a_call_whose_arguments_do_not_bind_records_them_as_made(
    tracekit_capture: Capture,
) -> None:
    """A TypeError at the call: the input is {"args": [...], "kwargs": {...}}, as in Opik."""

    @tracekit.track
    def add(x: int, y: int) -> int:
        return x + y

    class Box:
        @tracekit.track
        def put(self, item: str) -> None:
            return None

    with pytest.raises(TypeError):
        add(y=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        add(1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        add(1, x=1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Box().put(item="a", colour="red")  # type: ignore[call-arg]
    Box().put("a")
    inputs = [s.input for s in tracekit_capture.spans]
    assert inputs == [
        {"args": [], "kwargs": {"y": 5}},
        {"args": [1, 2, 3], "kwargs": {}},
        {"args": [1], "kwargs": {"x": 1}},
        {"args": [], "kwargs": {"item": "a", "colour": "red"}},
        {"item": "a"},
    ]


def test_tracing_failure_never_breaks_the_call(
    tracekit_capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing span processor is logged once; the traced calls still return their values."""
    from tracekit._pipeline import add_processor, remove_processor

    def broken(span: tracekit.Span) -> None:
        raise RuntimeError("exporter down")

    add_processor(broken)
    try:
        assert add(1) == 3
        assert add(2) == 4
    finally:
        remove_processor(broken)
    warnings = [r for r in caplog.records if r.name == "tracekit"]
    assert len(warnings) == 1
    assert len(tracekit_capture.spans) == 2


def test_an_exceptions_own_str_never_runs_on_the_traced_call(tracekit_capture: Capture) -> None:
    """A custom __str__ runs when the span is described, not while the error propagates."""
    calls: list[str] = []

    class Slow(Exception):
        def __str__(self) -> str:
            calls.append("str")
            return f"slow {self.args[0]}"

    @tracekit.track
    def fails() -> None:
        raise Slow(42)

    with pytest.raises(Slow):
        fails()
    assert calls == []
    (span,) = tracekit_capture.spans
    info = span.error_info
    assert info is not None
    assert info["message"] == "slow 42"
    assert calls == ["str"]


def test_update_names_a_value_of_the_wrong_type(tracekit_capture: Capture) -> None:
    """update_current_span(usage=[...]) says what it expected instead of failing inside."""
    with tracekit.span("s"):
        with pytest.raises(TypeError, match=r"usage=\[1, 2\]: expected a mapping"):
            tracekit.update_current_span(usage=[1, 2])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"metadata=\[1\]: expected a mapping"):
            tracekit.update_current_span(metadata=[1])  # type: ignore[arg-type]


@tracekit.track
def module_level_tracked(x: int, y: int = 2) -> int:
    """Docstring kept."""
    return x * y


def test_a_plain_function_stays_a_function_that_pickles_by_name(
    tracekit_capture: Capture,
) -> None:
    """Plain functions get a light closure: signature, name, doc kept; pickles like the original."""
    import pickle

    assert inspect.signature(module_level_tracked) == inspect.signature(
        module_level_tracked.__wrapped__  # type: ignore[attr-defined]
    )
    assert module_level_tracked.__name__ == "module_level_tracked"
    assert module_level_tracked.__doc__ == "Docstring kept."
    assert pickle.loads(pickle.dumps(module_level_tracked)) is module_level_tracked
    assert module_level_tracked(3) == 6
    assert tracekit_capture.named("module_level_tracked").input == {"x": 3, "y": 2}


def test_functions_defined_in_a_class_body_still_bind_as_methods(
    tracekit_capture: Capture,
) -> None:
    """Only functions outside class bodies get the closure: a method's input has no self."""

    class Greeter:
        @tracekit.track
        def greet(me, name: str) -> str:  # any name for the instance
            return f"hi {name}"

    assert Greeter().greet("ann") == "hi ann"
    assert tracekit_capture.named("greet").input == {"name": "ann"}


class _Searcher:
    @tracekit.track
    def search(self, query: str, k: int = 3, *rest: Any, mode: str = "fast", **extra: Any) -> None:
        pass

    @classmethod
    @tracekit.track
    def build(cls, name: str, size: int = 1) -> None:
        pass


@tracekit.track
def _search(query: str, k: int = 3, *rest: Any, mode: str = "fast", **extra: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("call", "keys"),
    [
        (lambda: _search("q"), ["query", "k", "mode"]),
        (lambda: _search("q", 5, mode="slow"), ["query", "k", "mode"]),
        (lambda: _search(mode="m", k=1, query="q"), ["query", "k", "mode"]),
        (lambda: _search("q", 5, 6, 7, z=1, a=2), ["query", "k", "rest", "mode", "z", "a"]),
        (lambda: _Searcher().search("q", mode="m"), ["query", "k", "mode"]),
        (lambda: _Searcher.build("n"), ["name", "size"]),
    ],
)
def test_inputs_are_in_parameter_order(call: Callable[[], None], keys: list[str]) -> None:
    with capture() as captured:
        call()
    (span,) = captured.spans
    assert list(span.input) == keys


def test_inputs_keep_parameter_order_in_the_store(tmp_path: Path) -> None:
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "t.db")
    try:
        _search("q", 5, mode="slow")
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    with sqlite3.connect(tmp_path / "t.db") as connection:
        (stored,) = connection.execute("select input from spans").fetchone()
    assert list(json.loads(stored)) == ["query", "k", "mode"]
