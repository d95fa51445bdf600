"""Making captured values JSON-safe, bounded and free of secrets — without ever raising.

Runs on the exporter's thread, never on the traced call. Whatever a user
passes or returns becomes JSON types only: unknown objects become their
`repr` (or a placeholder when even that fails), cycles are cut, long strings
and collections are truncated with a visible marker, and values under a
secret-looking key are replaced by `REDACTED`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import math
import sys
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from tracekit._redact import DEFAULT_REDACT, REDACTED, Redactor

__all__ = [
    "DEFAULT_REDACT",
    "REDACTED",
    "Limits",
    "Redactor",
    "SafeConverter",
    "json_safe_converter",
    "to_json_safe",
]


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much of a captured value is kept."""

    max_string: int = 10_000
    max_items: int = 1_000
    max_depth: int = 20
    max_span_bytes: int = 1_000_000  # every value of one span together

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits({field.name}={value!r}): expected a positive int")


def _truncated_string(text: str, limits: Limits) -> str:
    if len(text) <= limits.max_string:
        return text
    return f"{text[: limits.max_string]}...[truncated {len(text) - limits.max_string} chars]"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        try:
            return f"<unrepresentable {type(value).__qualname__}>"
        except Exception:
            return "<unrepresentable>"


def _shallow_size(value: object) -> int:
    """An object's own size plus its attributes': what holding it may cost, roughly."""
    try:
        size = sys.getsizeof(value)
        attributes = getattr(value, "__dict__", None)
        if type(attributes) is dict:
            for index, item in enumerate(attributes.values()):
                if index >= 100:
                    break
                size += sys.getsizeof(item)
        for name in getattr(type(value), "__slots__", ())[:100]:
            if isinstance(name, str) and hasattr(value, name):
                size += sys.getsizeof(getattr(value, name))
        return size
    except Exception:
        return 0


def _key_text(key: object) -> str:
    return key if isinstance(key, str) else _safe_repr(key)


class _Converter:
    """One conversion: tracks the objects on the current path to cut cycles."""

    def __init__(self, limits: Limits, redactor: Redactor) -> None:
        self.limits = limits
        self.redactor = redactor
        self.on_path: set[int] = set()
        # Roughly the bytes of JSON made so far: string lengths plus a few per item.
        self.size = 0
        # Roughly the bytes of the user's values that were read but not kept
        # (truncated, or behind a repr): with `size`, what the values held.
        self.cut = 0

    def convert(self, value: Any, depth: int) -> Any:
        # Exact types first: the common JSON-ish values skip the isinstance chain.
        kind = type(value)
        if kind is str:
            if len(value) > self.limits.max_string:
                self.cut += len(value)
                value = _truncated_string(value, self.limits)
            self.size += len(value)
            return value
        if value is None or kind is int or kind is bool:
            return value
        try:
            result = self._convert(value, depth)
        except Exception:
            result = _truncated_string(f"<unserializable {_safe_repr(value)}>", self.limits)
        if type(result) is str:
            self.size += len(result)
        return result

    def _convert(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            if len(value) > self.limits.max_string:
                self.cut += len(value)
            return _truncated_string(value, self.limits)
        if isinstance(value, bytes | bytearray | memoryview):
            self.cut += value.nbytes if isinstance(value, memoryview) else len(value)
            raw = bytes(value[: self.limits.max_string])
            text = f"<bytes base64:{base64.b64encode(raw).decode()}>"
            return _truncated_string(text, self.limits)
        if isinstance(value, datetime.datetime | datetime.date | datetime.time):
            return value.isoformat()
        if isinstance(value, uuid.UUID | Decimal | PurePath):
            return str(value)
        if isinstance(value, enum.Enum):
            return self._convert(value.value, depth)
        if depth >= self.limits.max_depth:
            return f"<max depth: {type(value).__qualname__}>"
        marker = id(value)
        if marker in self.on_path:
            return f"<cycle: {type(value).__qualname__}>"
        self.on_path.add(marker)
        try:
            return self._convert_container(value, depth + 1)
        finally:
            self.on_path.discard(marker)

    def _convert_container(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is dict:
            return self._mapping(value.items(), len(value), depth)
        if kind is list or kind is tuple:
            return self._sequence(value, len(value), depth)
        if isinstance(value, Mapping):
            return self._mapping(value.items(), len(value), depth)
        if isinstance(value, list | tuple | set | frozenset):
            return self._sequence(value, len(value), depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
            return self._mapping(fields, len(fields), depth)
        model_dump = getattr(value, "model_dump", None)  # pydantic v2 models
        if callable(model_dump) and not isinstance(value, type):
            return self._convert(model_dump(mode="python"), depth)
        tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
        if callable(tolist) and not isinstance(value, type):
            return self._convert(tolist(), depth)
        self.cut += _shallow_size(value)
        return _truncated_string(_safe_repr(value), self.limits)

    def _mapping(self, items: Iterable[tuple[Any, Any]], size: int, depth: int) -> dict[str, Any]:
        self.size += 16 * size
        result: dict[str, Any] = {}
        for index, (key, item) in enumerate(items):
            if index >= self.limits.max_items:
                result["..."] = f"[truncated {size - index} more keys]"
                break
            text = _truncated_string(_key_text(key), self.limits)
            self.size += len(text)
            result[text] = REDACTED if self.redactor.is_secret(text) else self.convert(item, depth)
        return result

    def _sequence(self, items: Iterable[Any], size: int, depth: int) -> list[Any]:
        self.size += 8 * size
        result: list[Any] = []
        for index, item in enumerate(items):
            if index >= self.limits.max_items:
                result.append(f"...[truncated {size - index} more items]")
                break
            result.append(self.convert(item, depth))
        return result


class SafeConverter:
    """A reusable `to_json_safe` with fixed limits and redactor (one per export batch).

    It also keeps a rough count of the JSON bytes it produced, so the export
    buffer can be bounded in bytes: read and reset it with `take_size()`.
    """

    __slots__ = ("_converter", "_taken")

    def __init__(self, limits: Limits, redactor: Redactor) -> None:
        self._converter = _Converter(limits, redactor)
        self._taken = 0  # kept bytes already handed out by take_size()

    def __call__(self, value: Any) -> Any:
        converter = self._converter
        converter.on_path.clear()
        return converter.convert(value, 0)

    def take_size(self) -> int:
        """The approximate bytes of JSON made since the last call."""
        size = self._converter.size
        self._converter.size = 0
        self._taken += size
        return size

    def take_raw_size(self) -> int:
        """The approximate bytes of the values read since the last call, before truncation."""
        converter = self._converter
        size = converter.cut + converter.size + self._taken
        converter.cut = converter.size = self._taken = 0
        return size


def json_safe_converter(limits: Limits, redactor: Redactor) -> SafeConverter:
    """A reusable `to_json_safe` with fixed limits and redactor (one per export batch)."""
    return SafeConverter(limits, redactor)


def to_json_safe(value: Any, limits: Limits, redactor: Redactor) -> Any:
    """`value` as JSON types only, bounded by `limits`, secrets redacted. Never raises."""
    return _Converter(limits, redactor).convert(value, 0)
