"""Captured values become JSON-safe, bounded and secret-free without ever raising."""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracekit
from tests.exporters_for_tests import RecordingExporter
from tracekit._capture import REDACTED, Limits, Redactor, to_json_safe


def safe(value: Any, **limits: int) -> Any:
    return to_json_safe(value, Limits(**limits), Redactor())


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BrokenEverything:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def tolist(self) -> list[int]:
        raise RuntimeError("no tolist")

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("no dump")


class ArrayLike:
    """Quacks like a numpy array."""

    def tolist(self) -> list[list[int]]:
        return [[1, 2], [3, 4]]


class Model(pydantic.BaseModel):
    name: str
    token: str


@dataclasses.dataclass
class Config:
    model: str
    password: str


weird = (
    st.builds(BrokenRepr)
    | st.builds(BrokenEverything)
    | st.builds(ArrayLike)
    | st.builds(object)
    | st.builds(Exception, st.text())
)
scalars = (
    st.binary(min_size=40, max_size=200)
    | st.text(min_size=40, max_size=200)
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.datetimes()
    | st.uuids()
    | st.decimals()
    | weird
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text() | st.integers(), children, max_size=5)
        | st.frozensets(st.integers() | st.text(), max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_any_value_converts_to_strict_json(value: Any) -> None:
    """Whatever the value, conversion returns and the result is strict JSON."""
    json.dumps(safe(value), allow_nan=False)


@given(values)
def test_conversion_is_bounded(value: Any) -> None:
    """No string exceeds the limit plus its marker; no collection the item limit plus one."""
    result = safe(value, max_string=50, max_items=3)

    def check(node: Any) -> None:
        if isinstance(node, str):
            assert len(node) <= 50 + len("...[truncated 99999999999 chars]")
        elif isinstance(node, list):
            assert len(node) <= 4
            for child in node:
                check(child)
        elif isinstance(node, dict):
            assert len(node) <= 4
            for child in node.values():
                check(child)

    check(result)


def test_a_failing_repr_becomes_a_placeholder() -> None:
    """An object whose __repr__ raises is shown by its type."""
    assert safe(BrokenRepr()) == "<unrepresentable BrokenRepr>"
    assert safe(BrokenEverything()).startswith("<unserializable")


def test_cycles_are_cut() -> None:
    """A list or dict containing itself is cut at the repeat, not recursed forever."""
    loop: list[Any] = [1]
    loop.append(loop)
    assert safe(loop) == [1, "<cycle: list>"]
    node: dict[str, Any] = {"a": 1}
    node["self"] = node
    assert safe(node) == {"a": 1, "self": "<cycle: dict>"}


def test_shared_references_are_not_mistaken_for_cycles() -> None:
    """The same object twice side by side is converted twice."""
    shared = {"x": 1}
    assert safe([shared, shared]) == [{"x": 1}, {"x": 1}]


def test_bytes_datetimes_uuids_and_decimals_become_text() -> None:
    """Common non-JSON scalars get a readable text form."""
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    assert safe(b"\x00\x01") == "<bytes base64:AAE=>"
    assert safe(b"x" * 100, max_string=10) == "<bytes bas...[truncated 21 chars]"
    assert safe(when) == "2026-01-02T03:04:05+00:00"
    assert safe(ident) == str(ident)
    assert safe(Decimal("1.5")) == "1.5"
    assert safe(float("inf")) == "inf"


def test_dataclasses_models_and_arrays_become_structures() -> None:
    """Dataclasses and pydantic models become dicts (secrets redacted), arrays lists."""
    assert safe(Config("gpt", "hunter2")) == {"model": "gpt", "password": REDACTED}
    assert safe(Model(name="n", token="t")) == {"name": "n", "token": REDACTED}
    assert safe(ArrayLike()) == [[1, 2], [3, 4]]


def test_long_strings_and_collections_are_truncated_with_a_marker() -> None:
    """Past the limits, a visible marker says how much was cut."""
    assert safe("x" * 30, max_string=10) == "x" * 10 + "...[truncated 20 chars]"
    assert safe(list(range(10)), max_items=3) == [0, 1, 2, "...[truncated 7 more items]"]
    assert safe({str(i): i for i in range(5)}, max_items=2) == {
        "0": 0,
        "1": 1,
        "...": "[truncated 3 more keys]",
    }


def test_depth_is_limited() -> None:
    """Nesting past max_depth is replaced by a marker."""
    assert safe([[[[1]]]], max_depth=2) == [["<max depth: list>"]]


def test_secrets_are_redacted_at_any_depth() -> None:
    """api_key, authorization, password, secret, token and *_key go, wherever they sit."""
    value = {
        "api_key": "sk-1",
        "messages": [{"role": "user", "content": "hi"}],
        "deep": [{"headers": {"Authorization": "Bearer x", "X-Api-Key": "k"}}],
        "client_secret": "s",
        "openai_key": "k",
        "access_token": "t",
        "token": "t",
        "db_password": "p",
        "max_tokens": 50,
        "tokens": 3,
    }
    assert safe(value) == {
        "api_key": REDACTED,
        "messages": [{"role": "user", "content": "hi"}],
        "deep": [{"headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED}}],
        "client_secret": REDACTED,
        "openai_key": REDACTED,
        "access_token": REDACTED,
        "token": REDACTED,
        "db_password": REDACTED,
        "max_tokens": 50,
        "tokens": 3,
    }


def test_user_patterns_add_to_the_defaults() -> None:
    """configure(redact=[...]) patterns are redacted too, in exported spans."""
    exporter = RecordingExporter()
    tracekit.configure(exporter=exporter, redact=["ssn", "*_pin"], flush_interval=0.01)
    try:

        @tracekit.track
        def enroll(ssn: str, card_pin: str, api_key: str, name: str) -> None:
            return None

        enroll("123", "0000", "sk", "Ada")
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    assert exporter.batches[0].spans[0].input == {
        "ssn": REDACTED,
        "card_pin": REDACTED,
        "api_key": REDACTED,
        "name": "Ada",
    }


def test_limits_reject_nonsense() -> None:
    """Limits must be positive ints."""
    with pytest.raises(ValueError, match="max_string=0"):
        Limits(max_string=0)
