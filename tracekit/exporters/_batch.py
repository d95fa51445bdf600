"""The background batcher between traced code and an exporter.

The traced call only appends the finished span to a bounded deque (no lock,
no I/O, no JSON). One daemon thread wakes every `flush_interval` seconds, or
as soon as a batch is full, turns spans into records (JSON-safe, redacted)
and hands them to the exporter in batches, retrying a failing batch a few
times. Nothing is lost silently: spans refused because the queue is full are
`dropped`, batches the backend refused after the retries are `failed`; both
are counted, logged once per burst, and reported by `stats()`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tracekit._capture import Limits, Redactor, json_safe_converter
from tracekit._log import logger
from tracekit._records import Batch, span_record, trace_record
from tracekit._span import Span
from tracekit.exporters._base import Exporter

__all__ = ["BatchProcessor", "ExportOptions", "Stats"]

# Waits between the attempts at one batch; a batch is tried len + 1 times.
# An exporter whose client retries by itself sets `retry_delays = ()`.
RETRY_DELAYS: tuple[float, ...] = (0.1, 0.5)


@dataclass(frozen=True)
class ExportOptions:
    """How the batcher queues, batches and converts."""

    max_queue: int = 10_000
    batch_size: int = 500
    flush_interval: float = 0.5
    project_name: str | None = None
    limits: Limits = field(default_factory=Limits)
    redactor: Redactor = field(default_factory=Redactor)


@dataclass(frozen=True)
class Stats:
    """Span counts since the exporter was configured (see `tracekit.stats()`)."""

    queued: int
    exported: int
    dropped: int
    failed: int


class _FlushRequest:
    __slots__ = ("done", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.done = threading.Event()


class _BurstLog:
    """Logs the first loss of a burst; stays quiet until a delivery succeeds again."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._in_burst = False

    def loss(self, count: int, total: int, reason: str) -> None:
        if not self._in_burst:
            self._in_burst = True
            logger.warning(
                "tracekit: %s %d span(s) (%s); %d so far. Further losses are counted "
                "in tracekit.stats() and logged again after the next successful export.",
                self._what,
                count,
                reason,
                total,
            )

    def recovered(self) -> None:
        self._in_burst = False


class BatchProcessor:
    """A span processor that exports through `make_exporter()` on a background thread."""

    def __init__(self, make_exporter: Callable[[], Exporter], options: ExportOptions) -> None:
        self._make_exporter = make_exporter
        self._options = options
        self._max_queue = options.max_queue
        self._batch_size = options.batch_size
        self._exporter: Exporter | None = None
        self._exported = 0
        self._in_flight = 0  # spans inside exporter.export() right now
        self._failed = 0
        self._dropped = 0
        self._drop_log = _BurstLog("dropped")
        self._fail_log = _BurstLog("could not export")
        self._setup_threading()
        _live_processors.add(self)

    def _setup_threading(self) -> None:
        self._queue: deque[Span | _FlushRequest] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the traced program's side -------------------------------------------

    def __call__(self, span: Span) -> None:
        """Queue a finished span. Never blocks: a full queue drops and counts it."""
        queue = self._queue
        if len(queue) >= self._max_queue or self._closed:
            self._drop(1, "the export queue is full" if not self._closed else "tracekit shut down")
            return
        queue.append(span)
        if self._thread is None:
            self._start()
        if len(queue) == self._batch_size:
            self._wake.set()

    def _drop(self, count: int, reason: str) -> None:
        with self._lock:
            self._dropped += count
            total = self._dropped
        self._drop_log.loss(count, total, f"{reason}; max_queue={self._max_queue}")

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="tracekit-export", daemon=True)
            self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is exported; True when none of it was lost."""
        if self._thread is None or not self._thread.is_alive():
            return not self._queue
        lost_before = self._dropped + self._failed
        request = _FlushRequest(timeout)
        self._queue.append(request)
        self._wake.set()
        delivered = request.done.wait(timeout)
        return delivered and self._dropped + self._failed == lost_before

    def shutdown(self, timeout: float) -> bool:
        """Flush with a bounded wait, stop the thread and close the exporter."""
        delivered = self.flush(timeout)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(0.1, timeout))
        left = sum(1 for item in self._queue if isinstance(item, Span))
        self._queue.clear()
        if thread is not None and thread.is_alive():
            left += self._in_flight  # the backend never answered for these
        if left:
            self._drop(left, "not exported by shutdown")
        stats = self.stats()
        if stats.dropped or stats.failed:
            logger.warning(
                "tracekit: %d span(s) were not delivered (dropped %d, failed %d); %d exported.",
                stats.dropped + stats.failed,
                stats.dropped,
                stats.failed,
                stats.exported,
            )
        return delivered and not left

    @property
    def project_name(self) -> str | None:
        return self._options.project_name

    def stats(self) -> Stats:
        queued = sum(1 for item in list(self._queue) if isinstance(item, Span))
        return Stats(queued, self._exported, self._dropped, self._failed)

    def _after_fork_in_child(self) -> None:
        """A forked child has no export thread: start over with an empty queue."""
        self._setup_threading()
        self._exporter = None

    # -- the export thread ------------------------------------------------------

    def _run(self) -> None:
        interval = self._options.flush_interval
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # never let the export thread die
                logger.exception("tracekit: export thread error")
            if self._closed and not self._queue:
                break
        exporter = self._exporter
        if exporter is not None:
            try:
                exporter.shutdown()
            except Exception:
                logger.exception("tracekit: exporter shutdown failed")

    def _drain(self) -> None:
        pending: list[Span] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushRequest):
                self._export(pending)
                pending = []
                self._flush_exporter(item.timeout)
                item.done.set()
                continue
            pending.append(item)
            if len(pending) >= self._batch_size:
                self._export(pending)
                pending = []
        self._export(pending)

    def _flush_exporter(self, timeout: float) -> None:
        if self._exporter is not None:
            try:
                self._exporter.flush(timeout)
            except Exception:
                logger.exception("tracekit: exporter flush failed")

    def _convert(self, spans: list[Span]) -> Batch:
        options = self._options
        safe = json_safe_converter(options.limits, options.redactor)
        project = options.project_name
        batch = Batch()
        for span in spans:
            try:
                record = span_record(span, safe, project)
                batch.spans.append(record)
                if span.is_root:
                    batch.traces.append(trace_record(span, safe, project, record))
            except Exception:  # a span that cannot be described is counted, not fatal
                self._failed += 1
                self._fail_log.loss(1, self._failed, "a span could not be converted")
        return batch

    def _get_exporter(self) -> Exporter:
        if self._exporter is None:
            self._exporter = self._make_exporter()
        return self._exporter

    def _get_exporter_or_none(self) -> Exporter | None:
        try:
            return self._get_exporter()
        except Exception:
            return None  # raised again, and counted, by the export attempt

    def _export(self, spans: list[Span]) -> None:
        if not spans:
            return
        batch = self._convert(spans)
        count = len(batch.spans)
        error: Exception | None = None
        delays = getattr(self._get_exporter_or_none(), "retry_delays", RETRY_DELAYS)
        self._in_flight = count
        for delay in (*delays, None):
            try:
                self._get_exporter().export(batch)
            except Exception as exc:
                error = exc
                if delay is not None and not self._closed:
                    time.sleep(delay)
                continue
            self._in_flight = 0
            self._exported += count
            self._fail_log.recovered()
            self._drop_log.recovered()
            return
        self._in_flight = 0
        self._failed += count
        self._fail_log.loss(count, self._failed, f"{type(error).__name__}: {error}")


# Every processor is told about forks, so a child process exports its own spans.
_live_processors: weakref.WeakSet[BatchProcessor] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for processor in list(_live_processors):
        processor._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
