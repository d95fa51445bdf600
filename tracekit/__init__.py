"""tracekit: tracing for LLM applications.

`@tracekit.track` any callable; the active span follows your code through
asyncio, trio, threads and generators. Spans go to Opik or a local SQLite
file (see `tracekit.configure`).
"""

import typing as _typing

from tracekit._config import configure, flush, is_tracing_active, set_tracing_active, stats
from tracekit._context import current_span
from tracekit._distributed import continue_trace, distributed_headers
from tracekit._feedback import FeedbackScore, log_feedback
from tracekit._instrument import (
    LiteLLMNotSupported,
    instrument_litellm,
    instrument_openai,
    uninstrument_litellm,
    uninstrument_openai,
)
from tracekit._scopes import (
    TraceInfo,
    context,
    current_trace,
    span,
    update_current_span,
    update_current_trace,
)
from tracekit._span import Span, SpanType
from tracekit._threads import ThreadPoolExecutor, propagate
from tracekit._track import track

if _typing.TYPE_CHECKING:
    from tracekit import testing

__all__ = [
    "FeedbackScore",
    "LiteLLMNotSupported",
    "Span",
    "SpanType",
    "ThreadPoolExecutor",
    "TraceInfo",
    "configure",
    "context",
    "continue_trace",
    "current_span",
    "current_trace",
    "distributed_headers",
    "flush",
    "instrument_litellm",
    "instrument_openai",
    "is_tracing_active",
    "log_feedback",
    "propagate",
    "set_tracing_active",
    "span",
    "stats",
    "testing",
    "track",
    "uninstrument_litellm",
    "uninstrument_openai",
    "update_current_span",
    "update_current_trace",
]

__version__ = "0.1.0"


if not _typing.TYPE_CHECKING:  # type checkers see `testing` imported above, nothing else

    def __getattr__(name: str) -> object:
        # `tracekit.testing` is imported on first use: a traced program never needs it.
        if name == "testing":
            import importlib

            return importlib.import_module("tracekit.testing")
        raise AttributeError(f"module 'tracekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
