"""Capture that cannot be exploded, and strings that are always storable.

Values a traced program may hand to tracekit on purpose or by accident:
shared sub-lists that expand, arrays and deques too big to copy, generators
that must not be consumed, mocks that record every attribute asked, secrets
behind attribute names, lone surrogates, dunder methods that raise.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import sys
import tracemalloc
import types
from collections.abc import Iterator
from typing import Any, NamedTuple
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import tracekit
from tests.exporters_for_tests import RecordingExporter
from tracekit._capture import (
    REDACTED,
    Limits,
    Redactor,
    SafeConverter,
    json_safe_converter,
    to_json_safe,
)
from tracekit._records import SpanRecord
from tracekit._span import Failure

# Room over the budget for the markers left where it ran out (one per level).
MARGIN = 2_000


def safe(value: Any, **limits: int) -> Any:
    return to_json_safe(value, Limits(**limits), Redactor())


def json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def export(fn: Any, *args: Any, **config: Any) -> list[SpanRecord]:
    """Run `fn(*args)` under a recording exporter; the span records it produced."""
    exporter = RecordingExporter()
    tracekit.configure(exporter=exporter, flush_interval=0.01, **config)
    try:
        with contextlib.suppress(Exception):
            fn(*args)
        assert tracekit.flush(30)
    finally:
        tracekit.configure(exporter="none")
    return [span for batch in exporter.batches for span in batch.spans]


class FakeArray:
    """Quacks like a big numpy array: `shape`, `dtype`, a lazy `flat`; `tolist` is watched."""

    dtype = "float64"

    def __init__(self, *shape: int) -> None:
        self._shape = shape
        self.tolist_calls = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def flat(self) -> Iterator[float]:
        return (float(i) for i in range(sys.maxsize))

    def __len__(self) -> int:
        return self._shape[0]

    def tolist(self) -> list[Any]:
        self.tolist_calls += 1
        raise MemoryError("the whole array was materialised")


class Credentials(NamedTuple):
    user: str
    api_key: str


@dataclasses.dataclass(slots=True)
class SlotConfig:
    model: str
    api_key: str


# --- one budget per span ---------------------------------------------------------------


def test_shared_sub_lists_are_counted_each_time_and_stop_at_the_span_budget() -> None:
    """`[[row] * 1000] * 1000` stops at max_span_bytes with a visible marker."""
    row = {"id": 1, "text": "some text of a row", "score": 0.5}
    value = [[row] * 1000] * 1000
    result = safe(value)
    assert json_size(result) <= 1_000_000 + MARGIN
    assert "...[span budget of 1000000 bytes reached]" in json.dumps(result)


def test_every_field_of_a_span_shares_one_budget_which_resets_per_span() -> None:
    """Input, output and metadata of a span share one budget; the next span starts afresh."""
    converter = SafeConverter(Limits(max_span_bytes=10_000), Redactor())
    big = ["x" * 100] * 1000
    fields = [converter(big), converter(big), converter({"m": big})]
    converter.take_size()
    assert sum(json_size(field) for field in fields) <= 10_000 + MARGIN
    assert fields[1] == "...[span budget of 10000 bytes reached]"
    assert converter(["x" * 100] * 10) == ["x" * 100] * 10


def test_a_span_with_exploding_input_and_output_is_exported_within_its_budget() -> None:
    """Through the pipeline: the exported record of such a span stays within max_span_bytes."""
    rows = [["cell"] * 1000] * 1000

    @tracekit.track
    def explode(data: Any) -> Any:
        return data

    (record,) = export(explode, rows, max_span_bytes=100_000)
    stored = [record.input, record.output, record.metadata, record.usage, record.error_info]
    assert json_size(stored) <= 100_000 + MARGIN


def test_take_size_reports_about_the_json_made() -> None:
    """take_size() stays a fair estimate of the JSON bytes, for the export buffer's bound."""
    converter = SafeConverter(Limits(), Redactor())
    value = {"messages": [{"role": "user", "content": "héllo\n" * 300}], "n": 12345, "t": 0.5}
    result = converter(value)
    size = converter.take_size()
    assert json_size(result) / 2 <= size <= 2 * json_size(result)


def test_escaped_and_multibyte_text_counts_at_its_encoded_size() -> None:
    """Control characters (6 bytes each in JSON) and non-ASCII text do not overrun the budget."""
    for text in ["\x01" * 5_000, "é" * 5_000, "😀" * 5_000, '"\\' * 5_000]:
        result = safe([text] * 1000, max_span_bytes=50_000)
        assert json_size(result) <= 50_000 + MARGIN


# --- slice before materialising --------------------------------------------------------


def test_a_big_numpy_like_array_is_sliced_never_copied_whole() -> None:
    """An array of 150 MB is recorded as shape, dtype and first items; tolist() is not called."""
    array = FakeArray(1_000, 18_750)  # 150 MB of float64
    tracemalloc.start()
    try:
        result = safe({"array": array}, max_items=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert array.tolist_calls == 0
    assert peak < 1_000_000
    recorded = result["array"]
    assert recorded["shape"] == [1_000, 18_750]
    assert recorded["dtype"] == "float64"
    assert recorded["values"][:3] == [0.0, 1.0, 2.0]
    assert recorded["values"][-1] == f"...[truncated {18_750_000 - 100} more items]"


def test_a_small_numpy_like_array_is_kept_whole() -> None:
    """Arrays within max_items keep their nested form through tolist()."""

    class Small:
        shape = (2, 2)
        dtype = "int64"

        def tolist(self) -> list[list[int]]:
            return [[1, 2], [3, 4]]

    assert safe(Small()) == [[1, 2], [3, 4]]


def test_an_array_whose_items_cannot_be_read_says_so() -> None:
    """Without `flat`, `reshape` or 1-d slicing, an array is its shape, dtype and a marker."""

    class Opaque:
        shape = (10, 10_000)
        dtype = "int8"

    assert safe(Opaque(), max_items=10) == {
        "shape": [10, 10_000],
        "dtype": "int8",
        "values": ["...[100000 items not read]"],
    }


def test_long_deques_sets_and_dict_views_are_sliced() -> None:
    """Deques, sets and dict views keep max_items items and a marker, without a full copy."""
    big = dict.fromkeys(range(200_000), 0)
    values = [collections.deque(range(200_000)), set(range(200_000)), big.keys(), big.values()]
    tracemalloc.start()
    try:
        results = [safe(value, max_items=10) for value in values]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200_000
    for result in results:
        assert len(result) == 11
        assert result[-1] == "...[truncated 199990 more items]"
    assert safe(big.items(), max_items=2) == [[0, 0], [1, 0], "...[truncated 199998 more items]"]


def test_generators_and_iterators_are_recorded_not_consumed() -> None:
    """A generator or iterator passed as a value is shown by its repr and keeps all its items."""

    def numbers() -> Iterator[int]:
        yield from range(3)

    generator = numbers()
    iterator = iter([1, 2, 3])
    assert safe(generator).startswith("<generator object")
    assert safe(iterator).startswith("<list_iterator object")
    assert list(generator) == [0, 1, 2]
    assert list(iterator) == [1, 2, 3]


def test_a_huge_range_is_its_repr() -> None:
    """range(10**12) is recorded as `range(0, 10**12)`, not a million items."""
    assert safe(range(10**12)) == f"range(0, {10**12})"


# --- hooks on the type -----------------------------------------------------------------


def test_a_mock_argument_gets_no_recorded_calls() -> None:
    """MagicMock and Mock arguments are recorded as their repr; the export adds no calls."""
    magic, plain = mock.MagicMock(), mock.Mock()

    @tracekit.track
    def handle(client: Any, other: Any) -> None:
        return None

    (record,) = export(handle, magic, plain)
    assert magic.mock_calls == []
    assert plain.mock_calls == []
    assert record.input == {"client": repr(magic), "other": repr(plain)}


# --- key names everywhere --------------------------------------------------------------


def test_secret_attribute_names_are_redacted_on_records_and_namespaces() -> None:
    """namedtuples, SimpleNamespace, argparse.Namespace and slotted dataclasses redact by name."""
    assert safe(Credentials("ada", "sk-1")) == {"user": "ada", "api_key": REDACTED}
    assert safe(types.SimpleNamespace(user="ada", api_key="sk-1")) == {
        "user": "ada",
        "api_key": REDACTED,
    }
    assert safe(argparse.Namespace(user="ada", password="pw")) == {
        "user": "ada",
        "password": REDACTED,
    }
    assert safe(SlotConfig("gpt", "sk-1")) == {"model": "gpt", "api_key": REDACTED}


def test_headers_given_as_pairs_are_redacted() -> None:
    """`[("Authorization", "Bearer x"), ...]` keeps the names and hides the secret values."""
    headers = [("Authorization", "Bearer x"), ("Accept", "text/plain"), ("X-Api-Key", "k")]
    assert safe({"headers": headers}) == {
        "headers": [
            ["Authorization", REDACTED],
            ["Accept", "text/plain"],
            ["X-Api-Key", REDACTED],
        ]
    }
    assert safe(tuple(headers[:1])) == [["Authorization", REDACTED]]


# --- strings are always storable -------------------------------------------------------


def test_lone_surrogates_become_replacement_characters_in_values_and_keys() -> None:
    """`os.fsdecode(b"\\xff")` text is stored as U+FFFD; surrogate pairs become their character."""
    broken = os.fsdecode(b"caf\xff")
    assert broken == "caf\udcff"
    result = safe({broken: [broken, "x" * 20 + broken], "pair": "\ud83d\ude00"})
    assert result == {"caf\ufffd": ["caf\ufffd", "x" * 20 + "caf\ufffd"], "pair": "😀"}
    json.dumps(result, ensure_ascii=False).encode("utf-8")


def test_bytes_keys_and_odd_reprs_are_storable_text() -> None:
    """Bytes keys are decoded with replacement; a repr with a lone surrogate is repaired."""

    class OddRepr:
        def __repr__(self) -> str:
            return "odd\udc80"

    assert safe({b"api_key": "sk-1", b"\xff": 1, "odd": OddRepr()}) == {
        "api_key": REDACTED,
        "\ufffd": 1,
        "odd": "odd\ufffd",
    }


def test_a_span_with_lone_surrogates_exports_as_utf8_json() -> None:
    """Input, output, name-independent fields and error text of such a span all encode."""
    broken = os.fsdecode(b"\xff\xfe")

    @tracekit.track
    def read(path: str) -> None:
        raise OSError(f"cannot read {path}")

    (record,) = export(read, broken)
    assert record.error_info is not None
    stored = [record.input, record.output, record.error_info]
    json.dumps(stored, ensure_ascii=False).encode("utf-8")
    assert record.input == {"path": "\ufffd\ufffd"}
    assert "cannot read \ufffd\ufffd" in record.error_info["message"]


# --- errors ----------------------------------------------------------------------------


def test_a_huge_error_message_is_cut_in_message_and_traceback() -> None:
    """A 20 MB message: error_info.message obeys max_string, the traceback its length cap."""
    try:
        raise ValueError("m" * 20_000_000)
    except ValueError as exc:
        info = Failure(exc).describe()
    assert len(info["traceback"]) <= 100_000 + 400  # the message's ceiling, plus frames
    converted = safe(info, max_string=1_000)
    assert len(converted["message"]) <= 1_000 + 40
    kept = json_safe_converter(Limits(max_string=1_000), Redactor()).tail(info["traceback"])
    assert len(kept) <= 1_000
    assert kept.endswith("m\n")  # the end, where the error is, is what is kept


def test_a_deep_exception_keeps_its_last_frames_only() -> None:
    """A traceback through 300 frames keeps the 50 nearest the raise, and says how many went."""

    def recurse(n: int) -> None:
        if n == 0:
            raise RuntimeError("bottom")
        recurse(n - 1)

    try:
        recurse(300)
    except RuntimeError as exc:
        text = Failure(exc).describe()["traceback"]
    assert text.count('  File "') == 50
    assert "...[252 earlier frames omitted]" in text
    assert text.endswith("RuntimeError: bottom\n")


def test_an_error_through_a_thousand_tracked_frames_is_stored_in_linear_size() -> None:
    """1,000 nested tracked calls that raise: all their error_info together stays small."""

    @tracekit.track
    def dive(n: int) -> None:
        if n == 0:
            raise RuntimeError("bottom")
        dive(n - 1)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        records = export(dive, 999)
    finally:
        sys.setrecursionlimit(limit)
    assert len(records) == 1_000
    sizes = [json_size(record.error_info) for record in records]
    assert all(record.error_info["message"] == "bottom" for record in records)  # type: ignore[index]
    assert all(record.error_info["traceback"].count('  File "') <= 50 for record in records)  # type: ignore[index]
    assert sum(sizes) < 1_000 * 10_000
    assert max(sizes) < 10_000


# --- anything at all -------------------------------------------------------------------


class Hostile:
    """Every dunder a converter might call raises."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        raise RuntimeError(f"repr of {self.what}")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"getattr {name}")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("iter")


class HostileList(list[Any]):
    """A list whose length and iteration raise."""

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("iter")


class HostileMapping(collections.UserDict[Any, Any]):
    """A mapping whose items raise halfway."""

    def items(self) -> Any:
        yield ("ok", 1)
        raise RuntimeError("items")


text = st.text() | st.sampled_from(["\udcff", "a\ud800b", "\ud83d\ude00", "\x1b[2J", '"\\'])
scalars = (
    text
    | st.text(min_size=50, max_size=400)
    | st.integers()
    | st.integers(min_value=2**100, max_value=2**5000)
    | st.floats()
    | st.none()
    | st.booleans()
    | st.binary(max_size=100)
    | st.builds(Hostile, st.text(max_size=5))
    | st.builds(mock.MagicMock)
    | st.builds(FakeArray, st.integers(0, 10**9))
)


def shared(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The same sub-object many times over, nested: small to build, huge to expand."""
    return st.builds(
        lambda x, n, m: [[x] * n] * m, children, st.integers(0, 3_000), st.integers(0, 50)
    )


values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(text | st.integers() | st.binary(max_size=5), children, max_size=5)
        | st.frozensets(st.integers() | text, max_size=5)
        | st.builds(collections.deque, st.lists(children, max_size=5))
        | st.builds(HostileList, st.lists(children, max_size=3))
        | st.builds(HostileMapping, st.dictionaries(text, children, max_size=3))
        | shared(children)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=5), st.integers(500, 20_000))
def test_any_span_converts_to_utf8_json_within_its_budget(fields: list[Any], budget: int) -> None:
    """Whatever the fields of a span, conversion returns UTF-8-encodable JSON within the budget."""
    converter = SafeConverter(
        Limits(max_string=300, max_items=100, max_span_bytes=budget), Redactor()
    )
    results = [converter(field) for field in fields]
    converter.take_size()
    size = len(json.dumps(results, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    assert size <= budget + MARGIN
