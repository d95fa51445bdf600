"""Bounded waits for what LiteLLM finishes on its own threads and tasks (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable

# A full collection holds the GIL for as long as the heap is big (0.3 s with
# litellm[proxy] loaded): collecting on every poll starved the threads whose
# work the condition waits for (LiteLLM's success callbacks).
COLLECT_EVERY_SECONDS = 0.5


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False).

    Garbage is collected now and then, for conditions that wait on an object's death.
    """
    deadline = time.monotonic() + timeout
    collected = 0.0
    while not condition():
        now = time.monotonic()
        if now > deadline:
            return False
        if now - collected >= COLLECT_EVERY_SECONDS:
            gc.collect()
            collected = time.monotonic()
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
