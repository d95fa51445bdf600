"""`@track`: one span per call of any kind of callable.

The wrapper is chosen once, at decoration time — generator function, async
generator function, coroutine function, or plain callable, checked in that
order — so a traced call does no `inspect` work. `wrapt.FunctionWrapper`
keeps `__name__`, `__doc__`, the signature and the `inspect.is*function`
answers, and binds correctly as a method, classmethod or staticmethod
whichever side of `@classmethod`/`@staticmethod` `@track` is written on.
A plain function defined outside a class body, whose wrapper needs none of
that, gets a `functools.wraps` closure instead: wrapt's call costs ~0.55 µs
more, on every call (and a closure pickles by name).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from tracekit import _config, _hooks, _pipeline
from tracekit._context import active_span
from tracekit._generators import Aggregate, drive_async_generator, drive_generator, joined_text
from tracekit._inputs import (
    CONTAINERS,
    InputBinder,
    as_at_the_call,
    make_input_binder,
    parameter_names,
    snapshot,
)
from tracekit._log import log_once
from tracekit._span import Span, SpanType
from tracekit._validate import (
    bool_flag,
    mapping_copy,
    optional_str,
    span_type,
    str_tuple,
    type_name,
)

__all__ = ["track"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


class _Options:
    """The validated arguments of one `@track(...)`."""

    __slots__ = (
        "capture_input",
        "capture_output",
        "generations_aggregator",
        "ignore_arguments",
        "metadata",
        "name",
        "project_name",
        "tags",
        "type",
    )

    def __init__(
        self,
        name: object,
        type: object,
        tags: object,
        metadata: object,
        project_name: object,
        capture_input: object,
        capture_output: object,
        ignore_arguments: object,
        generations_aggregator: object = None,
    ) -> None:
        self.name = optional_str("track", "name", name)
        self.type = span_type("track", type)
        self.tags = str_tuple("track", "tags", tags)
        self.metadata = mapping_copy("track", "metadata", metadata)
        self.project_name = optional_str("track", "project_name", project_name)
        self.capture_input = bool_flag("track", "capture_input", capture_input)
        self.capture_output = bool_flag("track", "capture_output", capture_output)
        self.ignore_arguments = str_tuple("track", "ignore_arguments", ignore_arguments)
        if generations_aggregator is not None and not callable(generations_aggregator):
            raise TypeError(
                f"track(generations_aggregator={generations_aggregator!r}): expected a "
                "callable taking the list of yielded items, "
                f"got {type_name(generations_aggregator)}"
            )
        self.generations_aggregator: Aggregate | None = generations_aggregator


def _name_of(func: Callable[..., Any]) -> str:
    """The span name of `func`: its `__name__`; a `functools.partial` takes its function's."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", None) or type_name(func)


def _check_ignored_names(func: Callable[..., Any], ignore: tuple[str, ...]) -> None:
    """Warn (once) about `ignore_arguments` naming no parameter: likely a typo.

    A warning, not an error: code ported from Opik, which accepts them, must
    not fail at import.
    """
    known = parameter_names(func)
    if not ignore or known is None:
        return
    names, takes_var_keyword = known
    unknown = [name for name in ignore if name not in names]
    if unknown and not takes_var_keyword:
        qualname = getattr(func, "__qualname__", repr(func))
        log_once(
            f"ignore_arguments:{qualname}:{unknown}",
            "tracekit: track(ignore_arguments=...): %s not a parameter of %r; "
            "its parameters are %s",
            ", ".join(map(repr, unknown)),
            qualname,
            ", ".join(sorted(names)) or "(none)",
            exc_info=False,
        )


@overload
def track(func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
@overload
def track(func: staticmethod[P, R], /) -> staticmethod[P, R]: ...
@overload
def track(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def track(
    *,
    name: str | None = None,
    type: SpanType = "general",
    tags: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    project_name: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    ignore_arguments: Iterable[str] | None = None,
    generations_aggregator: Callable[[list[Any]], Any] | None = None,
) -> _Decorator: ...
def track(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    type: SpanType = "general",
    tags: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    project_name: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    ignore_arguments: Iterable[str] | None = None,
    generations_aggregator: Callable[[list[Any]], Any] | None = None,
) -> Any:
    """Trace every call of the decorated callable as one span.

    Works bare (`@track`) or with options (`@track(name=..., type="tool")`),
    on functions, `async def`, generator and async generator functions,
    methods, classmethods and staticmethods. The span's parent is the span
    active at the call; inputs are captured by parameter name, the return
    value (or the yielded items) as output, and an exception as `error_info`
    before it is re-raised unchanged. A generator's output is the joined text
    when every item is a string, else the list of items;
    `generations_aggregator(items)` chooses instead.
    """
    options = _Options(
        name,
        type,
        tags,
        metadata,
        project_name,
        capture_input,
        capture_output,
        ignore_arguments,
        generations_aggregator,
    )
    if func is None:
        return _Decorator(options)
    return _decorate(func, options)


class _Decorator:
    """What `track(...)` with options returns: applies the options to a callable."""

    __slots__ = ("_options",)

    def __init__(self, options: _Options) -> None:
        self._options = options

    @overload
    def __call__(self, func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
    @overload
    def __call__(self, func: staticmethod[P, R], /) -> staticmethod[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]: ...
    def __call__(self, func: Any, /) -> Any:
        return _decorate(func, self._options)


def _decorate(target: Any, options: _Options) -> Any:
    func = target.__func__ if isinstance(target, classmethod | staticmethod) else target
    if not callable(func):
        raise TypeError(
            f"track() decorates a function, method, classmethod or staticmethod; "
            f"got {target!r} ({type_name(target)}). For a span name, write "
            f"@track(name=...)."
        )
    _check_ignored_names(func, options.ignore_arguments)
    if _config.disabled:  # TRACEKIT_DISABLED=1: the call costs what it did before
        return target
    name = options.name or _name_of(func)
    binder = make_input_binder(func, options.ignore_arguments) if options.capture_input else None
    if inspect.isgeneratorfunction(func):
        wrapper = _generator_wrapper(name, options, binder, drive_generator)
    elif inspect.isasyncgenfunction(func):
        wrapper = _generator_wrapper(name, options, binder, drive_async_generator)
    elif inspect.iscoroutinefunction(func):
        wrapper = _coroutine_wrapper(name, options, binder)
    else:
        wrapper = _plain_wrapper(name, options, binder)
        if _is_plain_function(target):
            return _closure(func, wrapper)
    import wrapt  # only here: it imports asyncio and importlib.metadata (~40 ms)

    return wrapt.FunctionWrapper(target, wrapper)


def _is_plain_function(target: Any) -> bool:
    """A sync function that will not be bound as a method: defined outside a class body.

    A class body's functions have qualified names `Class.name`; functions
    defined in a function have `outer.<locals>.name`. A first parameter named
    `self` or `cls` is taken as a method too, wherever it was defined.
    """
    if not inspect.isfunction(target):
        return False
    outer, _, _ = target.__qualname__.rpartition(".")
    if outer and not outer.endswith("<locals>"):
        return False
    code = target.__code__
    first = code.co_varnames[0] if code.co_argcount else None
    return first not in ("self", "cls")


def _closure(func: Callable[..., Any], wrapper: Wrapper) -> Callable[..., Any]:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        return wrapper(func, None, args, kwargs)

    return traced


SpanOpener = Callable[[Span | None, Any, tuple[Any, ...], dict[str, Any]], Span | None]


def _span_opener(name: str, options: _Options, binder: InputBinder | None) -> SpanOpener:
    """The per-call span constructor of one decorated callable, options bound once."""
    span_type, tags, metadata = options.type, options.tags, options.metadata
    project_name = options.project_name

    # Reached through an instance or class, a call's args hold no `self`/`cls`.
    bind_call = None if binder is None else functools.partial(binder, False)
    bind_bound_call = None if binder is None else functools.partial(binder, True)

    def open_span(
        parent: Span | None, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Span | None:
        """The call's span under `parent`; None (logged once) if tracing itself fails."""
        try:
            if binder is None:  # capture_input=False: the arguments are not held at all
                return Span(name, span_type, parent, tags, metadata, project_name)
            if len(args) == 1 and not kwargs:  # the usual call: `answer(messages)`
                if type(args[0]) in CONTAINERS:
                    args = (snapshot(args[0]),)
            elif kwargs or not CONTAINERS.isdisjoint(map(type, args)):  # maybe to copy
                args, kwargs = as_at_the_call(args, kwargs)
            binds = bind_call if instance is None else bind_bound_call
            return Span(
                name, span_type, parent, tags, metadata, project_name, None, binds, args, kwargs
            )
        except Exception:
            log_once(f"start:{name}", "tracekit: could not start a span for %s", name)
            return None

    return open_span


def _kept_open(result: Any, span: Span, capture_output: bool) -> bool:
    """Does an integration keep `span` open to end it itself (a returned stream)?"""
    return any(keep(result, span, capture_output) for keep in _hooks.end_with_result)


def _plain_wrapper(name: str, options: _Options, binder: InputBinder | None) -> Wrapper:
    capture_output = options.capture_output
    open_span = _span_opener(name, options, binder)

    def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not _pipeline.enabled:
            return wrapped(*args, **kwargs)
        parent = active_span.get()
        span = open_span(parent, instance, args, kwargs)
        if span is None:
            return wrapped(*args, **kwargs)
        active_span.set(span)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            active_span.set(parent)
            span.fail(exc)
            raise
        active_span.set(parent)
        if _hooks.end_with_result and _kept_open(result, span, capture_output):
            return result
        if capture_output:
            if span._output_fixed:
                span.keep_return_for_trace(result)
            else:
                span.output = result
        span.end()
        return result

    return call


def _coroutine_wrapper(name: str, options: _Options, binder: InputBinder | None) -> Wrapper:
    capture_output = options.capture_output
    open_span = _span_opener(name, options, binder)

    # The span starts when the coroutine starts running, under the span active
    # in the task that awaits it (which, for create_task, is the creator's).
    async def call(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: Any, kwargs: Any
    ) -> Any:
        if not _pipeline.enabled:
            return await wrapped(*args, **kwargs)
        parent = active_span.get()
        span = open_span(parent, instance, args, kwargs)
        if span is None:
            return await wrapped(*args, **kwargs)
        active_span.set(span)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            active_span.set(parent)
            span.fail(exc)
            raise
        active_span.set(parent)
        if _hooks.end_with_result and _kept_open(result, span, capture_output):
            return result
        if capture_output:
            if span._output_fixed:
                span.keep_return_for_trace(result)
            else:
                span.output = result
        span.end()
        return result

    return call


def _generator_wrapper(
    name: str,
    options: _Options,
    binder: InputBinder | None,
    drive: Callable[[Any, Span, Aggregate | None], Any],
) -> Wrapper:
    """Wrapper for generator and async generator functions; `drive` runs the body."""
    output = (options.generations_aggregator or joined_text) if options.capture_output else None
    open_span = _span_opener(name, options, binder)

    # The span starts at the call, under the span active there, wherever the
    # generator is consumed later.
    def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not _pipeline.enabled:
            return wrapped(*args, **kwargs)
        span = open_span(active_span.get(), instance, args, kwargs)
        try:
            body = wrapped(*args, **kwargs)
        except BaseException as exc:
            if span is not None:
                span.fail(exc)
            raise
        if span is None:
            return body
        return drive(body, span, output)

    return call
