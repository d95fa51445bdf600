"""Opik: spans and traces to the Opik server the `opik` SDK is configured for.

The settings (URL, workspace, API key, TLS, compression, default project)
are those of the opik SDK's cached client — the one LiteLLM's Opik callback
logs through — and requests go through the SDK's own HTTP client class, to
the REST endpoints `v1/private/{spans,traces}/batch` (and `/feedback-scores`
for scores, as `@opik.track` sends them). But tracekit owns its
HTTP client: the opik SDK closes its clients in its `atexit` hook, which
may run before tracekit's last flush, and tracekit must still deliver then.

The payload means what the SDK's own would for the same span or trace
(`Opik.span()` / `Opik.trace()`: its fields, `source`, `last_updated_at`,
usage parsed by the SDK's own function and copied into metadata), but it is
built as plain dicts, encoded with orjson and gzipped here: the SDK's
pydantic models and Fern encoder cost ~300 µs a span, stdlib `json` and
`datetime.isoformat` most of the rest.

Within a batch, spans go before traces, and scores last: if the server
stops answering half way, Opik may show spans without their trace record,
never a trace with none of its spans, nor a score of a span it never got.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson
from opik import httpx_client
from opik.api_objects import helpers as opik_helpers
from opik.api_objects import opik_client, validation_helpers

from tracekit import _shutdown
from tracekit._records import Batch, FeedbackScore, SpanRecord, TraceRecord

__all__ = ["OpikExporter"]

logger = logging.getLogger("tracekit")

# The most records Opik takes in one batch request.
MAX_PER_REQUEST = 1_000

# What the SDK writes in `source` for everything it logs itself.
SOURCE = "sdk"

# The SDK's generated REST client labels its batch bodies so; its HTTP client
# adds Content-Encoding when it gzips them (see `httpx_client.OpikHttpxClient`).
_PLAIN = {"Content-Type": "application/json"}
_GZIPPED = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


class OpikRejected(Exception):
    """Opik answered a batch with something other than success."""


class OpikRejectedContent(OpikRejected, ValueError):
    """Opik refused what a batch holds (400, 413, 422): its spans are then sent one by one."""


# "%Y-%m-%dT%H:%M:%S" of recent Unix seconds (as digits): a batch's times share a few.
_SECONDS: dict[str, str] = {}


def _second(digits: str) -> str:
    if len(_SECONDS) >= 4096:
        _SECONDS.clear()
    text = _SECONDS[digits] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(digits)))
    return text


def _time(unix_ns: int) -> str:
    """Unix nanoseconds as the SDK writes a UTC datetime (`isoformat()`, "Z"), to the µs.

    The same instant as the record's `start_time`/`end_time` (floored to the
    microsecond), at a fraction of the cost of building and formatting it.
    """
    if unix_ns < 10**15:  # before 1970-01-12: the digits below do not hold
        second_, micro_ = divmod(unix_ns // 1000, 1_000_000)
        fraction = f".{micro_:06d}" if micro_ else ""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second_)) + fraction + "Z"
    digits = str(unix_ns // 1000)
    second = digits[:-6]
    micro = digits[-6:]
    prefix = _SECONDS.get(second) or _second(second)
    if micro == "000000":
        return prefix + "Z"  # isoformat() leaves out a zero fraction
    return f"{prefix}.{micro}Z"


def _usage(span: SpanRecord) -> dict[str, int] | None:
    """The usage the SDK sends for `span.usage`: parsed as `Opik.span()` parses it.

    Usage already in Opik's format (`original_usage.*` keys, as tracekit's
    LLM spans carry it) passes through with its integers only.
    """
    try:
        return validation_helpers.validate_and_parse_usage(span.usage, logger, span.provider)
    except Exception:  # the SDK's parser on arbitrary user data: keep the plain counts
        counts = {
            k: v for k, v in (span.usage or {}).items() if type(v) is int and isinstance(k, str)
        }
        return counts or None


def _encode(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        # Ints beyond 64 bits, lone surrogates: orjson refuses them; encode the
        # batch as the SDK's HTTP client does (stdlib json, ASCII escapes).
        try:
            return json.dumps(payload).encode()
        except (TypeError, ValueError) as exc:
            raise OpikRejectedContent(f"cannot encode the batch as JSON: {exc}") from exc


class OpikExporter:
    """Sends each batch to Opik; raises when Opik does not accept it."""

    def __init__(self, request_timeout: float) -> None:
        config = opik_client.get_client_cached().config
        _shutdown.run_exit_hook_first()  # importing opik registered its exit hook
        self._default_project = config.project_name
        # Built as the SDK builds its own (connection_resources.py): same
        # headers (workspace, API key), TLS settings and event hooks.
        self._http = httpx_client.get(
            workspace=config.workspace,
            api_key=config.api_key,
            check_tls_certificate=config.check_tls_certificate,
            compress_json_requests=config.enable_json_request_compression,
            compression_level=config.request_compression_level,
        )
        self._compress = bool(config.enable_json_request_compression)
        self._compression_level = int(config.request_compression_level)
        base = (
            config.url_override if config.url_override.endswith("/") else config.url_override + "/"
        )
        self._spans_url = urljoin(base, "v1/private/spans/batch")
        self._traces_url = urljoin(base, "v1/private/traces/batch")
        self._span_scores_url = urljoin(base, "v1/private/spans/feedback-scores")
        self._trace_scores_url = urljoin(base, "v1/private/traces/feedback-scores")
        self._timeout = httpx.Timeout(request_timeout)

    def _shared(self, record: SpanRecord | TraceRecord, updated_at: str) -> dict[str, Any]:
        """The fields spans and traces send alike."""
        item: dict[str, Any] = {
            "id": record.id,
            "project_name": record.project_name or self._default_project,
            "name": record.name,
            "start_time": _time(record.start_ns),
            "last_updated_at": updated_at,
            "source": SOURCE,
        }
        if record.end_ns is not None:
            item["end_time"] = _time(record.end_ns)
        # Anything but a dict is wrapped, as `@opik.track` wraps it.
        if (value := record.input) is not None:
            item["input"] = value if isinstance(value, dict) else {"input": value}
        if (value := record.output) is not None:
            item["output"] = value if isinstance(value, dict) else {"output": value}
        if record.tags:
            item["tags"] = record.tags
        if record.error_info is not None:
            item["error_info"] = record.error_info
        return item

    def _trace(self, trace: TraceRecord, updated_at: str) -> dict[str, Any]:
        item = self._shared(trace, updated_at)
        if trace.metadata is not None:
            item["metadata"] = trace.metadata
        if trace.thread_id is not None:
            item["thread_id"] = trace.thread_id
        return item

    def _span(self, span: SpanRecord, updated_at: str) -> dict[str, Any]:
        item = self._shared(span, updated_at)
        item["trace_id"] = span.trace_id
        item["type"] = span.type
        if span.parent_id is not None:
            item["parent_span_id"] = span.parent_id
        metadata = span.metadata
        if span.usage:
            usage = _usage(span)
            if usage is not None:
                item["usage"] = usage
                # As `Opik.span()`: the usage as given, in metadata that exists.
                metadata = opik_helpers.add_usage_to_metadata(span.usage, metadata)
        if metadata is not None:
            item["metadata"] = metadata
        if span.model is not None:
            item["model"] = span.model
        if span.provider is not None:
            item["provider"] = span.provider
        if span.total_cost is not None:
            item["total_estimated_cost"] = span.total_cost
        return item

    def _score(
        self, target_id: str, project_name: str | None, score: FeedbackScore
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": target_id,
            "project_name": project_name or self._default_project,
            "name": score.name,
            "value": score.value,
            "source": SOURCE,
        }
        if score.reason is not None:
            item["reason"] = score.reason
        if score.category_name is not None:
            item["category_name"] = score.category_name
        return item

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

    def _body(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The request body and its headers, as the SDK's HTTP client frames JSON."""
        body = _encode(payload)
        if self._compress and len(body) >= httpx_client.MIN_COMPRESSED_ENTITY_BYTES:
            # mtime=0: one zlib call; the header's time is the only difference.
            return gzip.compress(body, self._compression_level, mtime=0), _GZIPPED
        return body, _PLAIN

    def _send(self, method: str, url: str, key: str, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), MAX_PER_REQUEST):
            body, headers = self._body({key: items[start : start + MAX_PER_REQUEST]})
            response = self._http.request(
                method, url, content=body, headers=headers, timeout=self._timeout
            )
            status = response.status_code
            if not 200 <= status < 300:
                kind = OpikRejectedContent if status in (400, 413, 422) else OpikRejected
                raise kind(f"Opik answered {status} to {method} {url}: {response.text[:200]}")

    def export(self, batch: Batch) -> None:
        # As the SDK stamps a record when it is logged: later sends win.
        updated_at = _time(time.time_ns())
        if batch.spans:
            spans = [self._span(s, updated_at) for s in batch.spans]
            self._send("POST", self._spans_url, "spans", spans)
        if batch.traces:
            traces = [self._trace(t, updated_at) for t in batch.traces]
            self._send("POST", self._traces_url, "traces", traces)
        of_spans, of_traces = self._scores(batch)
        if of_spans:
            self._send("PUT", self._span_scores_url, "scores", of_spans)
        if of_traces:
            self._send("PUT", self._trace_scores_url, "scores", of_traces)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        self._http.close()
