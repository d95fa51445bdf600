"""Making captured values JSON-safe, bounded and free of secrets — without ever raising.

Runs on the exporter's thread, never on the traced call. Whatever a user
passes or returns becomes JSON types only: unknown objects become their
`repr` (or a placeholder when even that fails), cycles are cut, long strings
and collections are truncated with a visible marker, and values under a
secret-looking key are replaced by `REDACTED`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import enum
import itertools
import json.encoder
import math
import sys
import types
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    KeysView,
    Mapping,
    MappingView,
    Sequence,
    Set,
    ValuesView,
)
from decimal import Decimal
from pathlib import PurePath
from types import SimpleNamespace
from typing import Any

from tracekit._inputs import Head
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


# How much text past `max_string` is scrubbed before the cut, so that a secret
# straddling the cut is still recognised whole and no prefix of it is kept.
_SCRUB_WINDOW = 4096
# Rough JSON sizes of scalars: a float's repr is at most 24 characters.
_FLOAT_SIZE = 24
# Ints this long are not emitted as numbers: `str()` of them is slow or refused.
_MAX_INT_BITS = 1024
_BUILTIN_METHODS = (
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.BuiltinMethodType,
)
_encode_json_string: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
)


def _truncated_string(text: str, limits: Limits) -> str:
    if len(text) <= limits.max_string:
        return text
    return f"{text[: limits.max_string]}...[truncated {len(text) - limits.max_string} chars]"


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:
        try:
            return f"<unrepresentable {type(value).__qualname__}>"
        except Exception:
            return "<unrepresentable>"


def _failed_repr(value: object) -> str:
    """What is shown of a value whose conversion failed: a container's repr could be huge."""
    if isinstance(value, Mapping | Sequence | Set | MappingView) and not isinstance(value, str):
        return f"{type(value).__qualname__} object"
    return _safe_repr(value)


def _sizeof(value: object) -> int:
    """`sys.getsizeof`, when the type's `__sizeof__` is built in: a mock's would record a call."""
    if isinstance(getattr(type(value), "__sizeof__", None), _BUILTIN_METHODS):
        return sys.getsizeof(value)
    return object.__sizeof__(value)


def _shallow_size(value: object) -> int:
    """An object's own size plus its attributes': what holding it may cost, roughly."""
    try:
        size = _sizeof(value)
        try:  # no instance `__getattr__` is asked
            attributes = object.__getattribute__(value, "__dict__")
        except AttributeError:
            attributes = None
        if type(attributes) is dict:
            for index, item in enumerate(attributes.values()):
                if index >= 100:
                    break
                size += _sizeof(item)
        for name in getattr(type(value), "__slots__", ())[:100]:
            if isinstance(name, str):
                with contextlib.suppress(AttributeError):
                    size += _sizeof(object.__getattribute__(value, name))
        return size
    except Exception:
        return 0


def _storable(text: str) -> str:
    """`text` with lone surrogates (e.g. from `os.fsdecode`) made U+FFFD; pairs are joined."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _utf8_size(text: str) -> tuple[str, int]:
    """`text` made encodable as UTF-8, and its bytes plus two quotes, escapes not counted."""
    try:
        return text, len(text.encode("utf-8")) + 2
    except UnicodeEncodeError:
        text = _storable(text)
        return text, len(text.encode("utf-8")) + 2


def _json_size(text: str) -> tuple[str, int]:
    """`text` made encodable as UTF-8, and the bytes it takes as a JSON string."""
    if text.isascii():  # O(1): CPython keeps the flag
        return text, len(_encode_json_string(text))
    text, size = _utf8_size(text)
    return text, size + len(_encode_json_string(text)) - len(text) - 2


def _key_text(key: object) -> str:
    if type(key) is str:
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, str):
        return str.__str__(key)
    return _safe_repr(key)


def _is_uuid(value: object) -> bool:
    # uuid is not imported for this (it loads `platform`): without it, there are no UUIDs.
    module = sys.modules.get("uuid")
    return module is not None and isinstance(value, module.UUID)


def _argparse_namespace() -> type | None:
    # argparse is not imported for this: without it loaded, there are no Namespaces.
    module = sys.modules.get("argparse")
    namespace = getattr(module, "Namespace", None)
    return namespace if isinstance(namespace, type) else None


class _Converter:
    """One conversion: tracks the objects on the current path to cut cycles.

    Every string it emits is scrubbed and storable as UTF-8; every value is
    counted against one budget per span (`max_span_bytes`), so shared and
    repeated sub-objects cost each time they are emitted. Hooks (`model_dump`,
    `tolist`, `_asdict`, ...) are looked up on the type, never the instance,
    so mocks and proxies are not called.
    """

    def __init__(self, limits: Limits, redactor: Redactor) -> None:
        self.limits = limits
        self.redactor = redactor
        self.scrub = redactor.scrub
        self.on_path: set[int] = set()
        # Roughly the bytes of JSON made so far (for the current span).
        self.size = 0
        # What `size` may reach in this span: `max_span_bytes`, less the room
        # kept for escapes in text that was not scanned for them.
        self.limit = limits.max_span_bytes
        # How many chars of this span's text may still go unscanned: scanning
        # costs ~2 ns a char, and ordinary spans never come near the budget.
        self.unscanned = limits.max_span_bytes // 50
        # Roughly the bytes of the user's values that were read but not kept
        # (truncated, or behind a repr): with `size`, what the values held.
        self.cut = 0
        # Converted dict keys: (emitted text, is secret). Keys repeat a lot.
        self.keys: dict[str, tuple[str, bool, int]] = {}
        self.budget_marker = f"...[span budget of {limits.max_span_bytes} bytes reached]"

    def convert(self, value: Any, depth: int) -> Any:
        # Exact types first: the common JSON-ish values skip the isinstance chain.
        kind = type(value)
        if kind is str:
            # The common case inline: short ASCII text, far from the budget.
            length = len(value)
            if length <= self.unscanned and length <= self.limits.max_string and value.isascii():
                text = self.scrub(value)
                if text == value and self.size + 6 * length + 2 <= self.limit:
                    self.unscanned -= length
                    self.limit -= 5 * length
                    self.size += length + 2
                    return value
                return self.text(text)
            return self.text(value)
        if kind is int:
            bits = value.bit_length()
            if bits > _MAX_INT_BITS:
                return self.text(f"<int of {bits} bits>")
            self.size += 2 + (bits * 77 >> 8)  # 77/256 ≈ log10(2): its digits
            return value
        if value is None or kind is bool:
            self.size += 5
            return value
        if self.size >= self.limit:
            return self.exhausted()
        try:
            if kind is dict or kind is list or kind is tuple:  # skip the scalar checks
                return self._nested(value, depth)
            return self._convert(value, depth)
        except Exception:
            return self.text(f"<unserializable {_failed_repr(value)}>")

    def text(self, text: str) -> str:
        """`text` as emitted: bounded, scrubbed, storable, and counted."""
        limits = self.limits
        length = len(text)
        if length > limits.max_string:
            self.cut += length
            window = text[: limits.max_string + _SCRUB_WINDOW]
            scrubbed = self.scrub(window)
            if scrubbed != window:  # replacements shift text: scrub all of it, then cut
                scrubbed = self.scrub(text)
            text = (
                f"{scrubbed[: limits.max_string]}...[truncated {length - limits.max_string} chars]"
            )
        else:
            text = self.scrub(text)
        length = len(text)
        if text.isascii():  # O(1): CPython keeps the flag
            size = length + 2
        else:
            text, size = _utf8_size(text)
        if length <= self.unscanned:
            # Not scanned for JSON escapes (each char may take up to 6 bytes):
            # the budget keeps room for the worst case instead.
            self.unscanned -= length
            self.limit -= 5 * length
        else:
            size += len(_encode_json_string(text)) - length - 2
        if self.size + size > self.limit:
            marker = self.budget_marker
            keep = max(0, (self.limit - self.size - len(marker) - 2) * length // size)
            text, size = _json_size(text[:keep] + marker)
        self.size += size
        return text

    def start_span(self) -> None:
        """A new span: its budget is whole again."""
        self.size = 0
        self.limit = self.limits.max_span_bytes
        self.unscanned = self.limits.max_span_bytes // 50

    def exhausted(self) -> str:
        """The marker left where the span's budget ran out."""
        marker = self.budget_marker
        self.size += len(marker) + 2
        return marker

    def _convert(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            self.size += 5
            return value
        if isinstance(value, int):  # IntEnum, IntFlag and other subclasses
            return self.convert(int.__int__(value), depth)
        if isinstance(value, float):
            number = float.__float__(value)
            if math.isfinite(number):
                self.size += _FLOAT_SIZE
                return number
            return self.text(str(number))
        if isinstance(value, str):
            return self.text(str.__str__(value))
        if isinstance(value, bytes | bytearray | memoryview):
            self.cut += value.nbytes if isinstance(value, memoryview) else len(value)
            raw = bytes(value[: self.limits.max_string + _SCRUB_WINDOW])
            decoded = raw.decode("utf-8", "replace")
            if self.scrub(decoded) != decoded:  # a secret inside: never store it encoded
                return self.text(f"<bytes: {decoded}>")
            raw = raw[: self.limits.max_string]
            return self.text(f"<bytes base64:{base64.b64encode(raw).decode()}>")
        if isinstance(value, datetime.datetime | datetime.date | datetime.time):
            return self.text(value.isoformat())
        if isinstance(value, Decimal | PurePath) or _is_uuid(value):
            return self.text(str(value))
        if isinstance(value, enum.Enum):
            return self._convert(value.value, depth)
        return self._nested(value, depth)

    def _nested(self, value: Any, depth: int) -> Any:
        """A container (or an object read as one), within `max_depth` and without cycles."""
        if depth >= self.limits.max_depth:
            return self.text(f"<max depth: {type(value).__qualname__}>")
        marker = id(value)
        if marker in self.on_path:
            return self.text(f"<cycle: {type(value).__qualname__}>")
        self.on_path.add(marker)
        try:
            return self._convert_container(value, depth + 1)
        finally:
            self.on_path.discard(marker)

    def _convert_container(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is Head:  # the first items of a long argument, copied at the call
            if value.kind is dict:
                return self._mapping(value, value.total, depth)
            return self._sequence(value, value.total, depth)
        if kind is dict:
            return self._mapping(value.items(), len(value), depth)
        if kind is list or kind is tuple:
            return self._sequence(value, len(value), depth)
        # From here on, hooks are looked up on the type: an instance's
        # `__getattr__` (a Mock's, a proxy's) is never asked.
        if isinstance(value, Mapping):
            return self._mapping(value.items(), len(value), depth)
        fields = getattr(kind, "_fields", None)
        if isinstance(value, tuple) and isinstance(fields, tuple):  # namedtuples
            names = [_key_text(name) for name in fields]
            return self._mapping(zip(names, value, strict=False), len(value), depth)
        if isinstance(value, range):
            return self.text(repr(value))
        if isinstance(value, Sequence | Set | KeysView | ValuesView | ItemsView):  # deques, views
            return self._sequence(value, len(value), depth)
        if dataclasses.is_dataclass(kind):
            pairs = [(f.name, getattr(value, f.name, "<unset>")) for f in dataclasses.fields(kind)]
            return self._mapping(pairs, len(pairs), depth)
        namespace = _argparse_namespace()
        if isinstance(value, SimpleNamespace) or (namespace and isinstance(value, namespace)):
            attributes = vars(value)
            return self._mapping(attributes.items(), len(attributes), depth)
        as_dict = getattr(kind, "_asdict", None)
        if callable(as_dict):
            return self._convert(as_dict(value), depth)
        model_dump = getattr(kind, "model_dump", None)  # pydantic v2 models
        if callable(model_dump):
            return self._convert(model_dump(value, mode="python"), depth)
        if getattr(kind, "shape", None) is not None and getattr(kind, "dtype", None) is not None:
            return self._array(value, kind, depth)
        tolist = getattr(kind, "tolist", None)  # array-likes without a shape
        if callable(tolist):
            return self._convert(tolist(value), depth)
        # Generators and iterators included: consuming them would take the user's items.
        self.cut += _shallow_size(value)
        return self.text(_safe_repr(value))

    def _array(self, value: Any, kind: type, depth: int) -> Any:
        """A numpy-like array: whole when small, else its shape, dtype and first items."""
        shape = [int(size) for size in itertools.islice(value.shape, 32)]  # a lying shape ends
        count = math.prod(shape)
        tolist = getattr(kind, "tolist", None)
        if count <= self.limits.max_items and callable(tolist):
            return self._convert(tolist(value), depth)
        self.cut += _shallow_size(value)
        head: Iterable[Any] = ()
        if getattr(kind, "flat", None) is not None:  # numpy: a lazy flat iterator
            head = itertools.islice(value.flat, self.limits.max_items + 1)
        elif callable(getattr(kind, "reshape", None)):  # torch and friends: a view
            head = value.reshape(-1)[: self.limits.max_items + 1]
        elif len(shape) == 1 and callable(getattr(kind, "__getitem__", None)):  # pandas Series
            head = value[: self.limits.max_items + 1]
        values = self._sequence(head, count, depth)
        if len(values) < min(count, self.limits.max_items):  # no way to read its items
            values.append(self.text(f"...[{count - len(values)} items not read]"))
        self.size += 40
        return {"shape": shape, "dtype": self.text(str(value.dtype)), "values": values}

    def _key(self, key: Any) -> tuple[str, bool, int]:
        """A dict key as emitted, whether its value is a secret, and its JSON size."""
        raw = _key_text(key)
        known = self.keys.get(raw)
        if known is None:
            name = _truncated_string(self.redactor.scrub(raw), self.limits)  # scrub, then cut
            text, size = _json_size(name)
            known = (text, self.redactor.is_secret(name), size)
            if len(raw) <= 200 and len(self.keys) < 4096:
                self.keys[raw] = known
        return known

    def _mapping(self, items: Iterable[tuple[Any, Any]], size: int, depth: int) -> dict[str, Any]:
        limits = self.limits
        keys = self.keys
        self.size += 2
        result: dict[str, Any] = {}
        for index, (key, item) in enumerate(items):
            if index >= limits.max_items:
                result["..."] = self.text(f"[truncated {size - index} more keys]")
                break
            if self.size >= self.limit:
                result["..."] = self.exhausted()
                break
            known = keys.get(key) if type(key) is str else None
            text, secret, key_size = self._key(key) if known is None else known
            self.size += key_size + 4  # ": " and ", "
            result[text] = self.text(REDACTED) if secret else self.convert(item, depth)
        return result

    def _sequence(self, items: Iterable[Any], size: int, depth: int) -> list[Any]:
        limits = self.limits
        is_secret = self.redactor.is_secret
        self.size += 2
        result: list[Any] = []
        for index, item in enumerate(items):
            if index >= limits.max_items:
                result.append(self.text(f"...[truncated {size - index} more items]"))
                break
            if self.size >= self.limit:
                result.append(self.exhausted())
                break
            self.size += 2  # ", "
            # A header list, `[("Authorization", "Bearer ..."), ...]`, or dict items.
            pair = type(item) in (tuple, list) and len(item) == 2
            if pair and type(name := item[0]) in (str, bytes):
                if type(name) is bytes:  # ASGI headers: [(b"authorization", b"...")]
                    name = name.decode("latin-1")
                if is_secret(name):
                    result.append([self.text(name), self.text(REDACTED)])
                    continue
            result.append(self.convert(item, depth))
        return result


class SafeConverter:
    """A reusable `to_json_safe` with fixed limits and redactor (one per export batch).

    It also keeps a rough count of the JSON bytes it produced, so the export
    buffer can be bounded in bytes: read and reset it with `take_size()`.
    That count is also the span's budget (`Limits.max_span_bytes`): call
    `take_size()` once per span, after converting all of the span's values.
    """

    __slots__ = ("_converter", "_taken")

    def __init__(self, limits: Limits, redactor: Redactor) -> None:
        self._converter = _Converter(limits, redactor)
        self._taken = 0  # kept bytes already handed out by take_size()

    def __call__(self, value: Any) -> Any:
        converter = self._converter
        converter.on_path.clear()
        return converter.convert(value, 0)

    def tail(self, text: str) -> str:
        """The end of `text`, scrubbed as a whole first, within `max_string` characters."""
        converter = self._converter
        text = converter.scrub(text)
        keep = converter.limits.max_string - 40
        if len(text) > converter.limits.max_string and keep > 0:
            text = f"...[{len(text) - keep} chars cut]\n{text[-keep:]}"
        return text

    def name(self, text: str) -> str:
        """A field that identifies a record (name, project, tag, thread, score name).

        Scrubbed, storable and cut at `max_string` like any text, and counted,
        but never given up to the span's budget: a span whose values filled it
        must still be filed under its own project and names.
        """
        converter = self._converter
        limit = converter.limits.max_string
        text = converter.scrub(text)
        if type(text) is not str or not text.isascii():  # ASCII holds no surrogate (O(1))
            text = _storable(text)  # and a str subclass (a str Enum) becomes its plain text
        if len(text) > limit:
            text = f"{text[:limit]}...[truncated {len(text) - limit} chars]"
        converter.size += len(text) + 2
        return text

    def take_size(self) -> int:
        """The approximate bytes of JSON made since the last call; starts a new span's budget."""
        converter = self._converter
        size = converter.size
        converter.start_span()
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
