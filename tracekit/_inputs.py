"""Inputs by parameter name, with the binding worked out once per decorated callable.

`inspect.Signature.bind` costs microseconds per call; the traced call only
zips the positional arguments onto precomputed names.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "CONTAINERS",
    "Head",
    "InputBinder",
    "as_at_the_call",
    "copy_limit",
    "make_input_binder",
    "snapshot",
]

# (is_bound, args, kwargs) -> inputs. `is_bound` is True when the wrapper was
# reached through an instance or class, so args hold no `self`/`cls`.
InputBinder = Callable[[bool, tuple[Any, ...], dict[str, Any]], dict[str, Any]]


# Argument types copied at the call (see `as_at_the_call`).
CONTAINERS = frozenset((list, dict, set))


_copy_dict = dict.copy

# The most items a copy at the call keeps: what a record can show (set by
# `configure(max_collection_items=...)`); a longer container is copied in part.
copy_limit = 1_000


class Head(list[Any]):
    """The first items of a longer list, dict or set copied at the call, and its length.

    Nothing past `copy_limit` items is recorded, so nothing past it is copied:
    a 10-million-item argument costs the traced call no more than a short one.
    """

    __slots__ = ("kind", "total")

    def __init__(self, items: Iterable[Any], kind: type, total: int) -> None:
        super().__init__(items)
        self.kind = kind
        self.total = total


def _copy_mixed(items: Iterable[Any]) -> list[Any]:
    """A list holding more than dicts: its dicts copied, the rest as they are."""
    return [item.copy() if type(item) is dict else item for item in items]


def snapshot(value: Any) -> Any:
    """A shallow copy of a list, dict or set, a list's dicts (chat messages) copied too;
    anything else as it is. Past `copy_limit` items, only the first ones (a `Head`)."""
    kind = type(value)
    if kind is list:
        if len(value) <= copy_limit:
            try:  # a list of dicts: copied in C (a dict subclass is recorded as a dict)
                return list(map(_copy_dict, value))
            except TypeError:
                return _copy_mixed(value)
        head = value[: copy_limit + 1]
        try:
            return Head(map(_copy_dict, head), list, len(value))
        except TypeError:
            return Head(_copy_mixed(head), list, len(value))
    if kind is dict or kind is set:
        if len(value) <= copy_limit:
            return value.copy()
        items = itertools.islice(value.items() if kind is dict else value, copy_limit + 1)
        return Head(items, kind, len(value))
    return value


def as_at_the_call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments as they are now, for an input that is named later.

    Chat code appends the reply to the messages list it passed, right after
    the call: top-level lists, dicts and sets (and the dicts in a list) are
    copied, shallowly; anything else is kept by reference. The callee still
    gets the caller's own objects.
    """
    # (snapshot returns anything else as it is; a list, not a generator, is faster)
    if not CONTAINERS.isdisjoint(map(type, args)):
        args = tuple([snapshot(a) for a in args])
    if kwargs and not CONTAINERS.isdisjoint(map(type, kwargs.values())):
        kwargs = {k: snapshot(v) for k, v in kwargs.items()}
    return args, kwargs


def _parameters(func: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins and some C callables have none
        return None


def parameter_names(func: Callable[..., Any]) -> tuple[set[str], bool] | None:
    """The parameter names of `func` and whether it takes `**kwargs`; None if unknowable."""
    params = _parameters(func)
    if params is None:
        return None
    names = {p.name for p in params}
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


# The slot of a required parameter before the call's arguments fill it.
_UNFILLED = object()


def make_input_binder(func: Callable[..., Any], ignore: Iterable[str] = ()) -> InputBinder:
    """Build the per-call function that names `func`'s arguments.

    Defaults are included, as `Signature.bind` + `apply_defaults` would; extra
    positional arguments go under the `*args` name; `**kwargs` are merged
    flat; names in `ignore` are left out.
    """
    ignored = frozenset(ignore)
    params = _parameters(func)
    if params is None:
        return _fallback_binder(ignored)
    positional_params = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    positional = tuple(p.name for p in positional_params)
    var_positional = next(
        (p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None
    )
    # The inputs of a call before its arguments fill them: every parameter in
    # the signature's order (so inputs read in that order), with its default.
    # A required parameter's slot is always filled when the call binds; the
    # `*args` slot is dropped when no extra argument comes.
    unbound_template = {
        p.name: _UNFILLED if p.default is inspect.Parameter.empty else p.default
        for p in params
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    bound_template = dict(unbound_template)  # a bound method's: without `self`
    if positional:
        bound_template.pop(positional[0], None)
    unbound_names = positional
    bound_names = positional[1:]
    binds = _binding_check(params, positional, var_positional)

    # The usual call binds without the check: positional arguments only, at
    # least up to the last required positional parameter and at most one per
    # positional parameter, and no keyword-only parameter is required.
    only_positional_needed = not any(
        p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
        for p in params
    )
    required = max(
        (i + 1 for i, p in enumerate(positional_params) if p.default is p.empty), default=0
    )
    fewest_unbound, fewest_bound = required, max(0, required - 1)  # bound: `self` is given
    takes_no_self = not positional and var_positional is None  # bound, the call raised

    def bind(is_bound: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names, fewest = (bound_names, fewest_bound) if is_bound else (unbound_names, fewest_unbound)
        usual = only_positional_needed and not kwargs and fewest <= len(args) <= len(names)
        if (is_bound and takes_no_self) or (not usual and not binds(names, args, kwargs)):
            # The call raised TypeError: its arguments as made.
            return {"args": list(args), "kwargs": dict(kwargs)}
        inputs = (bound_template if is_bound else unbound_template).copy()
        inputs.update(zip(names, args))  # noqa: B905 (extra args are handled below)
        if len(args) > len(names):
            inputs[var_positional or "args"] = args[len(names) :]
        elif var_positional is not None:
            del inputs[var_positional]
        if kwargs:
            inputs.update(kwargs)
        if ignored:
            for name in ignored:
                inputs.pop(name, None)
        return inputs

    return bind


BindingCheck = Callable[[tuple[str, ...], tuple[Any, ...], dict[str, Any]], bool]


def _binding_check(
    params: list[inspect.Parameter], positional: tuple[str, ...], var_positional: str | None
) -> BindingCheck:
    """Would the arguments bind to `params`? What `Signature.bind` checks, precomputed."""
    kind = inspect.Parameter
    by_keyword = frozenset(
        p.name for p in params if p.kind in (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)
    )
    takes_var_keyword = any(p.kind is kind.VAR_KEYWORD for p in params)
    required = tuple(
        p.name
        for p in params
        if p.default is kind.empty and p.kind not in (kind.VAR_POSITIONAL, kind.VAR_KEYWORD)
    )
    # Given by keyword, these go to **kwargs (if any), never to their parameter.
    positional_only = frozenset(p.name for p in params if p.kind is kind.POSITIONAL_ONLY)
    first = positional[0] if positional else None

    def binds(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if len(args) > len(names) and var_positional is None:
            return False
        given = names[: len(args)]
        skipped = first if len(names) < len(positional) else None  # bound self/cls
        for key in kwargs:
            if key in positional_only:
                if not takes_var_keyword:
                    return False
            elif (
                key in given or key == skipped or (key not in by_keyword and not takes_var_keyword)
            ):
                return False
        return all(
            name in given or name == skipped or (name in kwargs and name not in positional_only)
            for name in required
        )

    return binds


def _fallback_binder(ignored: frozenset[str]) -> InputBinder:
    def bind(is_bound: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = {"args": args} if args else {}
        inputs.update((k, v) for k, v in kwargs.items() if k not in ignored)
        return inputs

    return bind
