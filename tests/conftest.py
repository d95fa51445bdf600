"""Shared fixtures: async tests run on asyncio and trio; global state resets per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tracekit
from tracekit._context import context_defaults
from tracekit._log import reset_log_once


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every `@pytest.mark.anyio` test runs once on asyncio and once on trio."""
    return str(request.param)


@pytest.fixture(autouse=True, scope="session")
def _export_nowhere_by_default() -> None:
    """Tests that export configure their own exporter; the rest write no files."""
    tracekit.configure(exporter="none")


@pytest.fixture(autouse=True)
def _stack_is_empty_after_each_test() -> Iterator[None]:
    reset_log_once()
    yield
    assert tracekit.current_span() is None, "a test left a span active"
    assert context_defaults.get() is None, "a test left tracekit.context() defaults set"
