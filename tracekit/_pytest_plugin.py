"""pytest plugin (registered through the `pytest11` entry point): the `tracekit_capture` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tracekit.testing import Capture, capture


@pytest.fixture
def tracekit_capture() -> Iterator[Capture]:
    """Spans finished during the test, collected in memory."""
    with capture() as captured:
        yield captured
