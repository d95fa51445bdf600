"""Opik: spans and traces to the Opik server the `opik` SDK is configured for.

The settings (URL, workspace, API key, TLS, compression, default project)
are those of the opik SDK's cached client — the one LiteLLM's Opik callback
logs through — and requests go through the SDK's own HTTP client class, to
the REST endpoints `v1/private/{spans,traces}/batch` (and `/feedback-scores`
for scores, as `@opik.track` sends them). But tracekit owns its
HTTP client: the opik SDK closes its clients in its `atexit` hook, which
may run before tracekit's last flush, and tracekit must still deliver then.
Records are already JSON-safe, so they are sent as plain JSON (the SDK's
pydantic models cost ~300 µs a span to build and encode).

Within a batch, spans go before traces, and scores last: if the server
stops answering half way, Opik may show spans without their trace record,
never a trace with none of its spans, nor a score of a span it never got.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urljoin

import httpx
from opik import httpx_client
from opik.api_objects import opik_client

from tracekit import _shutdown
from tracekit._records import Batch, FeedbackScore, SpanRecord, TraceRecord

__all__ = ["OpikExporter"]

# The most records Opik takes in one batch request.
MAX_PER_REQUEST = 1_000


class OpikRejected(Exception):
    """Opik answered a batch with something other than success."""


class OpikRejectedContent(OpikRejected, ValueError):
    """Opik refused what a batch holds (400, 413, 422): its spans are then sent one by one."""


def _as_object(value: Any, key: str) -> Any:
    """Opik shows dicts best; anything else is wrapped the way `@opik.track` does."""
    if value is None or isinstance(value, dict):
        return value
    return {key: value}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _usage(usage: dict[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    counts = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
    return counts or None


def _without_nones(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class OpikExporter:
    """Sends each batch to Opik; raises when Opik does not accept it."""

    def __init__(self, request_timeout: float) -> None:
        config = opik_client.get_client_cached().config
        _shutdown.run_exit_hook_first()  # importing opik registered its exit hook
        self._default_project = config.project_name
        self._http = httpx_client.get(
            workspace=config.workspace,
            api_key=config.api_key,
            check_tls_certificate=config.check_tls_certificate,
            compress_json_requests=config.enable_json_request_compression,
            compression_level=config.request_compression_level,
        )
        base = (
            config.url_override if config.url_override.endswith("/") else config.url_override + "/"
        )
        self._spans_url = urljoin(base, "v1/private/spans/batch")
        self._traces_url = urljoin(base, "v1/private/traces/batch")
        self._span_scores_url = urljoin(base, "v1/private/spans/feedback-scores")
        self._trace_scores_url = urljoin(base, "v1/private/traces/feedback-scores")
        self._timeout = httpx.Timeout(request_timeout)

    def _trace(self, trace: TraceRecord) -> dict[str, Any]:
        return _without_nones(
            {
                "id": trace.id,
                "project_name": trace.project_name or self._default_project,
                "name": trace.name,
                "start_time": _time(trace.start_time),
                "end_time": _time(trace.end_time),
                "input": _as_object(trace.input, "input"),
                "output": _as_object(trace.output, "output"),
                "metadata": trace.metadata,
                "tags": trace.tags or None,
                "error_info": trace.error_info,
                "thread_id": trace.thread_id,
            }
        )

    def _span(self, span: SpanRecord) -> dict[str, Any]:
        return _without_nones(
            {
                "id": span.id,
                "project_name": span.project_name or self._default_project,
                "trace_id": span.trace_id,
                "parent_span_id": span.parent_id,
                "name": span.name,
                "type": span.type,
                "start_time": _time(span.start_time),
                "end_time": _time(span.end_time),
                "input": _as_object(span.input, "input"),
                "output": _as_object(span.output, "output"),
                "metadata": span.metadata,
                "model": span.model,
                "provider": span.provider,
                "tags": span.tags or None,
                "usage": _usage(span.usage),
                "error_info": span.error_info,
                "total_estimated_cost": span.total_cost,
            }
        )

    def _score(
        self, target_id: str, project_name: str | None, score: FeedbackScore
    ) -> dict[str, Any]:
        return _without_nones(
            {
                "id": target_id,
                "project_name": project_name or self._default_project,
                "name": score.name,
                "value": score.value,
                "reason": score.reason,
                "category_name": score.category_name,
                "source": "sdk",
            }
        )

    def _scores(self, batch: Batch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The scores the batch carries, for spans and for traces, each in the order given.

        Opik keeps the last score it receives under a name: a trace's own
        scores travel with the trace, maybe after a late score given earlier.
        """
        of_spans = [
            (span.id, span.project_name, score)
            for span in batch.spans
            for score in span.feedback_scores
        ]
        of_traces = [
            (trace.id, trace.project_name, score)
            for trace in batch.traces
            for score in trace.feedback_scores
        ]
        for late in batch.feedback:
            target = of_traces if late.span_id is None else of_spans
            target.append((late.span_id or late.trace_id, late.project_name, late.score))

        def in_order(scores: list[tuple[str, str | None, FeedbackScore]]) -> list[dict[str, Any]]:
            return [self._score(*item) for item in sorted(scores, key=lambda s: s[2].given_ns)]

        return in_order(of_spans), in_order(of_traces)

    def _send(self, method: str, url: str, key: str, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), MAX_PER_REQUEST):
            response = self._http.request(
                method,
                url,
                json={key: items[start : start + MAX_PER_REQUEST]},
                timeout=self._timeout,
            )
            status = response.status_code
            if not 200 <= status < 300:
                kind = OpikRejectedContent if status in (400, 413, 422) else OpikRejected
                raise kind(f"Opik answered {status} to {method} {url}: {response.text[:200]}")

    def export(self, batch: Batch) -> None:
        if batch.spans:
            self._send("POST", self._spans_url, "spans", [self._span(s) for s in batch.spans])
        if batch.traces:
            self._send("POST", self._traces_url, "traces", [self._trace(t) for t in batch.traces])
        of_spans, of_traces = self._scores(batch)
        if of_spans:
            self._send("PUT", self._span_scores_url, "scores", of_spans)
        if of_traces:
            self._send("PUT", self._trace_scores_url, "scores", of_traces)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        self._http.close()
