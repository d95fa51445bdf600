"""Argument checks for the public API: misuse fails at decoration or setup time.

Each message names the call, the bad value and what is accepted, e.g.
`track(type='bogus'): unknown span type; expected one of 'general', ...`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from tracekit._span import SPAN_TYPES, SpanType

__all__ = ["bool_flag", "mapping_copy", "optional_str", "span_type", "str_tuple", "type_name"]


def type_name(value: object) -> str:
    return type(value).__name__


def optional_str(call: str, field: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"{call}({field}={value!r}): expected a str or None, got {type_name(value)}"
        )
    return value


def span_type(call: str, value: object) -> SpanType:
    if value not in SPAN_TYPES:
        raise ValueError(
            f"{call}(type={value!r}): unknown span type; expected one of "
            + ", ".join(repr(t) for t in SPAN_TYPES)
        )
    return cast(SpanType, value)


def bool_flag(call: str, field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{call}({field}={value!r}): expected True or False")
    return value


def mapping_copy(call: str, field: str, value: object) -> dict[str, Any] | None:
    """A private copy of a mapping argument (None when empty or None)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{call}({field}={value!r}): expected a mapping (dict) or None, got {type_name(value)}"
        )
    return dict(value) or None


def str_tuple(call: str, field: str, values: object) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(
            f"{call}({field}={values!r}): expected a list of str or None, got {type_name(values)}"
        )
    items = tuple(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(
                f"{call}({field}=...): every item must be a str, got {item!r} ({type_name(item)})"
            )
    return items
