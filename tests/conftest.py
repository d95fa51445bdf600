"""Shared fixtures: async tests run on asyncio and trio; global state resets per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Before anything imports opik or litellm: keep every byte on 127.0.0.1.
os.environ.update(
    OPIK_SENTRY_ENABLE="false",
    OPIK_ANALYTICS_ENABLE="false",
    LITELLM_LOCAL_MODEL_COST_MAP="True",
    OPIK_PROJECT_NAME="tracekit-tests",
    OPIK_WORKSPACE="default",
)
os.environ.pop("OPIK_API_KEY", None)

import tracekit
from tests.litellm_proxy import LiteLLMProxy
from tests.opik_server import OpikServer
from tracekit._context import context_defaults
from tracekit._log import reset_log_once
from tracekit.testing import Capture


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


@pytest.fixture(scope="session")
def opik_server() -> Iterator[OpikServer]:
    """An Opik-compatible server on 127.0.0.1; the opik SDK is pointed at it for the session."""
    server = OpikServer().start()
    os.environ["OPIK_URL_OVERRIDE"] = server.url
    yield server
    server.stop()


@pytest.fixture(scope="session")
def litellm_proxy(
    opik_server: OpikServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiteLLMProxy]:
    """A real LiteLLM proxy on 127.0.0.1, logging to the in-suite Opik server."""
    proxy = LiteLLMProxy(tmp_path_factory.mktemp("litellm-proxy"), opik_server.url)
    try:
        proxy.wait_until_up()
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def litellm_instrumented() -> Iterator[None]:
    """LiteLLM instrumented, with no callbacks of anyone's; all undone afterwards."""
    import litellm

    litellm.logging_callback_manager._reset_all_callbacks()
    tracekit.instrument_litellm()
    yield
    tracekit.uninstrument_litellm()
    litellm.logging_callback_manager._reset_all_callbacks()


@pytest.fixture
def exported_capture() -> Iterator[Capture]:
    """`tracekit_capture`, with the spans exported as well (to assert on the store or wire)."""
    with tracekit.testing.capture(export=True) as captured:
        yield captured
