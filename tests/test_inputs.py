"""Inputs are named as `inspect.Signature.bind` + `apply_defaults` would name them.

The binder names a call's arguments without binding a signature per call;
fuzzed here against `Signature.bind` over signatures of every parameter kind
and calls that bind or raise TypeError (recorded as made).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit._inputs import make_input_binder


def positional(a, b, c=3):  # type: ignore[no-untyped-def]
    pass


def only_defaults(a=1, b=2):  # type: ignore[no-untyped-def]
    pass


def positional_only(a, b=2, /, c=3):  # type: ignore[no-untyped-def]
    pass


def keyword_only(a, *, b, c=3):  # type: ignore[no-untyped-def]
    pass


def optional_keyword_only(a, b=2, *, c=3):  # type: ignore[no-untyped-def]
    pass


def star_args(a, *rest, b=2):  # type: ignore[no-untyped-def]
    pass


def star_kwargs(a, b=2, **options):  # type: ignore[no-untyped-def]
    pass


def everything(a, /, b, c=3, *rest, d, e=5, **options):  # type: ignore[no-untyped-def]
    pass


def nothing():  # type: ignore[no-untyped-def]
    pass


class Service:
    def method(self, a, b=2):  # type: ignore[no-untyped-def]
        pass

    def method_star(self, *rest, **options):  # type: ignore[no-untyped-def]
        pass

    def no_self():  # type: ignore[no-untyped-def]  # the call raises: no self
        pass


FUNCTIONS: list[Callable[..., Any]] = [
    positional,
    only_defaults,
    positional_only,
    keyword_only,
    optional_keyword_only,
    star_args,
    star_kwargs,
    everything,
    nothing,
]
METHODS = [Service.method, Service.method_star, Service.no_self]
KEYWORDS = ["self", "a", "b", "c", "d", "e", "rest", "options", "extra"]


def expected(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What Signature.bind + apply_defaults names, flattened as the binder documents."""
    signature = inspect.signature(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": dict(kwargs)}
    bound.apply_defaults()
    inputs: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            inputs.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL or value:
            inputs[name] = value
    return inputs


calls = st.tuples(
    st.lists(st.integers(), max_size=5).map(tuple),
    st.dictionaries(st.sampled_from(KEYWORDS), st.integers(), max_size=4),
)


@settings(max_examples=500)
@given(func=st.sampled_from(FUNCTIONS), call=calls)
def test_a_function_call_is_named_as_signature_bind_names_it(
    func: Callable[..., Any], call: tuple[tuple[Any, ...], dict[str, Any]]
) -> None:
    args, kwargs = call
    assert make_input_binder(func)(False, args, kwargs) == expected(func, args, kwargs)


@settings(max_examples=300)
@given(func=st.sampled_from(METHODS), call=calls)
def test_a_method_call_is_named_without_self(
    func: Callable[..., Any], call: tuple[tuple[Any, ...], dict[str, Any]]
) -> None:
    """Bound (through an instance), args hold no `self`: named as if it were given."""
    args, kwargs = call
    reference = expected(func, (Service(), *args), kwargs)
    if "args" in reference and "kwargs" in reference and len(reference) == 2:
        reference = {"args": list(args), "kwargs": dict(kwargs)}  # recorded as made, no self
    else:
        reference.pop("self")
    assert make_input_binder(func)(True, args, kwargs) == reference
