"""The `tracekit` logger, and the rule that an internal failure is logged once."""

from __future__ import annotations

import contextlib
import logging
import threading

__all__ = ["log_once", "logger"]

logger = logging.getLogger("tracekit")

_seen: set[str] = set()
_seen_lock = threading.Lock()


def log_once(key: str, message: str, *args: object, exc_info: bool = True) -> None:
    """Log an internal tracing failure the first time `key` fails, then stay quiet.

    Tracing must never break or flood the traced program: a broken serializer
    hit on every call would otherwise log on every call.
    """
    with _seen_lock:
        if key in _seen:
            return
        _seen.add(key)
    with contextlib.suppress(Exception):  # a broken logging handler is not ours to raise
        logger.warning(message, *args, exc_info=exc_info)


def reset_log_once() -> None:
    """Forget which failures were logged (for tests)."""
    with _seen_lock:
        _seen.clear()
