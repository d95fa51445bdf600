"""The `tracekit` logger, and the rule that an internal failure is logged once."""

from __future__ import annotations

import contextlib
import logging
import threading

__all__ = ["log_once", "logger"]

logger = logging.getLogger("tracekit")


class _Scrubbed(logging.Filter):
    """Removes known secrets from tracekit's log lines, exception text included.

    An internal failure's message or traceback may quote a value being
    exported (a LiteLLM error quoting its API key). Only records logged on the
    `tracekit` logger itself pass through here; they are rare, so the cost
    does not matter.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):  # a log line is never lost to scrubbing
            from tracekit._redact import default_redactor

            scrub = default_redactor().scrub
            record.msg = scrub(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            if record.stack_info:
                record.stack_info = scrub(record.stack_info)
        return True


logger.addFilter(_Scrubbed())

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
