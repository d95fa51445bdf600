"""Opik: spans and traces through the `opik` SDK's cached client.

This is the same client LiteLLM's Opik callback logs through, so its URL,
workspace, API key and project settings apply. Batches go out synchronously
on tracekit's export thread with the client's REST API
(`v1/private/{traces,spans}/batch`, retried by the client itself), so a
failure reaches tracekit, which counts it, instead of vanishing in a
background queue.
"""

from __future__ import annotations

from typing import Any

from opik.api_objects import opik_client
from opik.rest_api.core.request_options import RequestOptions
from opik.rest_api.types.error_info_write import ErrorInfoWrite
from opik.rest_api.types.span_write import SpanWrite
from opik.rest_api.types.trace_write import TraceWrite

from tracekit._records import Batch, SpanRecord, TraceRecord

__all__ = ["OpikExporter"]


def _as_object(value: Any, key: str) -> Any:
    """Opik shows dicts best; anything else is wrapped the way `@opik.track` does."""
    if value is None or isinstance(value, dict):
        return value
    return {key: value}


def _error(info: dict[str, str] | None) -> ErrorInfoWrite | None:
    if info is None:
        return None
    return ErrorInfoWrite(
        exception_type=info["exception_type"],
        message=info.get("message"),
        traceback=info.get("traceback", ""),
    )


def _usage(usage: dict[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    counts = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
    return counts or None


class OpikExporter:
    """Sends each batch to Opik; raises when Opik does not accept it."""

    # The opik REST client already retries 429/5xx/timeouts (3 attempts,
    # ~5 s and ~6 s apart, honouring Retry-After; opik 2.2.122).
    retry_delays: tuple[float, ...] = ()

    def __init__(self, request_timeout: float) -> None:
        client = opik_client.get_client_cached()
        self._rest = client.rest_client
        self._default_project = client.project_name
        self._options = RequestOptions(
            timeout_in_seconds=max(1, round(request_timeout)), max_retries=0
        )

    def _trace(self, trace: TraceRecord) -> TraceWrite:
        return TraceWrite(
            id=trace.id,
            project_name=trace.project_name or self._default_project,
            name=trace.name,
            start_time=trace.start_time,
            end_time=trace.end_time,
            input=_as_object(trace.input, "input"),
            output=_as_object(trace.output, "output"),
            metadata=trace.metadata,
            tags=trace.tags or None,
            error_info=_error(trace.error_info),
            thread_id=trace.thread_id,
        )

    def _span(self, span: SpanRecord) -> SpanWrite:
        return SpanWrite(
            id=span.id,
            project_name=span.project_name or self._default_project,
            trace_id=span.trace_id,
            parent_span_id=span.parent_id,
            name=span.name,
            type=span.type,
            start_time=span.start_time,
            end_time=span.end_time,
            input=_as_object(span.input, "input"),
            output=_as_object(span.output, "output"),
            metadata=span.metadata,
            model=span.model,
            provider=span.provider,
            tags=span.tags or None,
            usage=_usage(span.usage),
            error_info=_error(span.error_info),
            total_estimated_cost=span.total_cost,
        )

    def export(self, batch: Batch) -> None:
        if batch.traces:
            self._rest.traces.create_traces(
                traces=[self._trace(t) for t in batch.traces], request_options=self._options
            )
        if batch.spans:
            self._rest.spans.create_spans(
                spans=[self._span(s) for s in batch.spans], request_options=self._options
            )

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        pass
