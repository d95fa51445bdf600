"""Bounded waits for what LiteLLM finishes on its own threads and tasks (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        gc.collect()
        threading.Event().wait(0.01)
    return True


async def until_in_loop(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """`until`, yielding to the running loop (LiteLLM's async callbacks run on it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
