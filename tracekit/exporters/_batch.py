"""The background pipeline between traced code and an exporter.

1. The traced call appends the finished span to a bounded deque (no lock,
   no I/O, no JSON). Past `max_queue` the span is dropped and counted.
2. Spans are turned into JSON-safe, redacted records, which releases the
   user's arguments, results and exception frames. Records wait in a buffer
   bounded in count (`max_queue`) and bytes (`max_buffer_bytes`); past either
   bound they are dropped and counted.
3. The delivery thread (`tracekit-deliver`) hands records to the exporter in
   batches, retrying a failing batch a few times.

Usually the delivery thread converts what it is about to deliver, so one
thread does the work. The conversion thread (`tracekit-export`) steps in
while delivery waits on the backend, and while spans hold big values: the
user's objects are then released within `flush_interval` whatever the
backend does, and big ones are hurried (see `HEAVY_SPAN_BYTES`). One lock
serialises conversion, so records keep the order of their spans.

Every span is in exactly one state, and `stats()` reads them all under one
lock, so `produced == queued + in_flight + exported + dropped + failed` holds
at every moment. Each burst of losses is logged once, with its cause.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import sleep

from tracekit._capture import Limits, Redactor, SafeConverter, json_safe_converter
from tracekit._feedback import LateFeedback
from tracekit._log import log_once, logger
from tracekit._records import (
    Batch,
    FeedbackRecord,
    SpanRecord,
    TraceRecord,
    feedback_record,
    span_record,
    trace_record,
)
from tracekit._span import Span
from tracekit.exporters._base import Exporter

__all__ = ["BatchProcessor", "ExportOptions", "Stats"]

# Waits between the attempts at one batch; a batch is tried len + 1 times.
RETRY_DELAYS: tuple[float, ...] = (0.1, 0.5)

# While spans hold big values, the conversion thread is woken once this many
# spans wait (light spans: a batch, or every flush_interval): raw spans hold
# the user's objects, so heavy ones must not pile up.
CONVERT_EVERY = 8

# Spans that hold more than this (in strings, bytes and items, before
# truncation) are heavy: while heavy spans wait, every CONVERT_EVERY-th
# traced call yields the GIL to the converter, so the user's values do not
# pile up for a whole 5 ms switch interval. Light spans never pay for it.
HEAVY_SPAN_BYTES = 64 * 1024

# While spans are heavy, the queue of spans not yet converted holds at most
# about this many bytes of the user's values (at least 4 spans); past it,
# spans are dropped and counted rather than held.
RAW_BUDGET_BYTES = 32 * 1024 * 1024

# Errors that say a batch's content, not the backend, is at fault: the spans
# of such a batch are then sent one by one, so only the bad one is lost.
CONTENT_ERRORS: tuple[type[BaseException], ...] = (
    UnicodeError,
    ValueError,
    TypeError,
    OverflowError,
)

# A span whose conversion takes longer than this (a user's __repr__ that
# hangs) is given up and counted as failed; another thread takes over.
CONVERT_BUDGET_SECONDS = 2.0
STUCK_CHECK_SECONDS = 0.5

# What a record costs beyond its captured values (ids, times, names, objects).
RECORD_OVERHEAD_BYTES = 400

# Traces recorded in a project of their own, remembered so that a score given
# later with `log_feedback` is filed in that project (Opik files scores by project).
REMEMBERED_TRACE_PROJECTS = 10_000

# What the queue holds: finished spans, scores given later, flush markers.
_Item = Span | LateFeedback


@dataclass(frozen=True)
class ExportOptions:
    """How the pipeline queues, batches, converts and bounds what it holds."""

    max_queue: int = 10_000
    batch_size: int = 500
    flush_interval: float = 0.5
    max_buffer_bytes: int = 64 * 1024 * 1024
    project_name: str | None = None
    limits: Limits = field(default_factory=Limits)
    redactor: Redactor = field(default_factory=Redactor)


@dataclass(frozen=True)
class Stats:
    """Span counts since the exporter was configured (see `tracekit.stats()`).

    `produced == queued + in_flight + exported + dropped + failed`, always.
    """

    produced: int = 0
    queued: int = 0
    in_flight: int = 0
    exported: int = 0
    dropped: int = 0
    failed: int = 0


class _FlushRequest:
    """A marker that travels through both stages behind every span produced before it."""

    __slots__ = ("deadline", "done", "lost")

    def __init__(self, deadline: float, lost_before: int) -> None:
        self.deadline = deadline
        self.lost = lost_before  # losses among the spans ahead of this marker
        self.done = threading.Event()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class _Converted:
    """One span's records (or one late score), ready to deliver, and about how many bytes."""

    __slots__ = ("feedback", "nbytes", "span", "trace")

    def __init__(
        self,
        span: SpanRecord | None,
        trace: TraceRecord | None,
        nbytes: int,
        feedback: FeedbackRecord | None = None,
    ) -> None:
        self.span = span
        self.trace = trace
        self.nbytes = nbytes
        self.feedback = feedback


class _BurstLog:
    """Logs the first loss of a burst; quiet until the caller says the burst is over."""

    def __init__(self, what: str) -> None:
        self._what = what
        self.in_burst = False

    def loss(self, count: int, total: int, reason: str) -> None:
        if not self.in_burst:
            self.in_burst = True
            logger.warning(
                "tracekit: %s %d span(s) (%s); %d so far. Further losses are counted "
                "in tracekit.stats() and logged again once this burst is over.",
                self._what,
                count,
                reason,
                total,
            )

    def recovered(self) -> None:
        self.in_burst = False


def _batch_of(items: list[_Converted]) -> Batch:
    batch = Batch()
    for item in items:
        if item.span is not None:
            batch.spans.append(item.span)
        if item.trace is not None:
            batch.traces.append(item.trace)
        if item.feedback is not None:
            batch.feedback.append(item.feedback)
    return batch


# Exporters of processors that a forked child inherited: never used, never
# closed (closing the parent's SQLite connection or HTTP pool from the child
# would disturb the parent), kept referenced so no finalizer runs.
_inherited_exporters: list[Exporter] = []


class BatchProcessor:
    """A span processor that exports through `make_exporter()` on background threads."""

    def __init__(self, make_exporter: Callable[[], Exporter], options: ExportOptions) -> None:
        self._make_exporter = make_exporter
        self._options = options
        self._max_queue = options.max_queue
        self._batch_size = options.batch_size
        self._start_fresh()
        _live_processors.add(self)

    def _start_fresh(self) -> None:
        """Empty queues, zero counts, no threads yet (also a forked child's start)."""
        # Re-entrant: a SIGTERM handler may flush while the main thread is
        # inside a counted section.
        self._lock = threading.RLock()
        self._queue: deque[_Item | _FlushRequest] = deque()
        self._markers_queued = 0
        self._wake = threading.Event()  # the delivery thread: spans wait
        self._hurry = threading.Event()  # the conversion thread: big values wait
        self._convert_lock = threading.Lock()  # one converter at a time: order is kept
        # The chunk being converted, by whom, and since when its current span:
        # a watchdog for values whose conversion hangs (see _rescue_if_stuck).
        self._chunk: list[_Item | _FlushRequest] | None = None
        self._chunk_ready: list[_Converted | _FlushRequest | None] = []
        self._chunk_owner = 0
        self._chunk_position = 0
        self._chunk_clock = 0.0
        self._abandoned_threads: set[int] = set()
        self._outbox: deque[_Converted | _FlushRequest] = deque()
        self._trace_projects: OrderedDict[str, str] = OrderedDict()  # trace id -> its project
        self._exporter: Exporter | None = None
        self._converter: threading.Thread | None = None
        self._deliverer: threading.Thread | None = None
        # How big the spans' values are, learnt by the converter. Until the
        # first spans are converted they count as heavy: the converter is woken
        # (and yielded to) early, and learns at once.
        self._heavy = True
        self._raw_per_span = 0.0
        self._wake_at = CONVERT_EVERY
        self._set_limits()  # _queue_limit, _check_every: fewer while spans are heavy
        self._attempt_error: BaseException | None = None  # of the batch being sent, if any
        self._closing = False  # no new spans; the threads finish what they hold
        self._abandoned = False  # shutdown gave up waiting: the threads stop counting
        # Where every span is, changed under the lock. A span is appended to
        # the queue, or dropped at the door; once taken off the queue it is
        # converting, in the outbox, sending, then exported, dropped or failed.
        self._entry_dropped = 0
        self._taken = 0
        self._converting = 0
        self._outbox_spans = 0
        self._outbox_bytes = 0
        self._sending = 0
        self._exported = 0
        self._dropped = 0
        self._failed_converting = 0
        self._failed_delivering = 0
        self._drop_log = _BurstLog("dropped")
        self._fail_log = _BurstLog("could not export")

    # -- the traced program's side -------------------------------------------

    def __call__(self, span: _Item) -> None:
        """Queue a finished span (or late score). Never blocks: a full queue drops and counts it."""
        queue = self._queue
        waiting = len(queue) + 1
        if self._closing or waiting > self._queue_limit:
            self._drop_at_entry(1)
            return
        queue.append(span)
        if self._converter is None:
            self._start()
        if waiting % self._check_every == 0:
            self._on_backlog(waiting)

    def _on_backlog(self, waiting: int) -> None:
        """Every few queued spans: wake the converter, or yield the GIL to it."""
        if not self._heavy:
            if waiting >= self._wake_at:
                self._wake.set()
        elif waiting == self._check_every:
            self._hurry.set()
        else:  # big values pile up: let the converter have the GIL now, not in 5 ms
            sleep(0)

    def _drop_at_entry(self, count: int) -> None:
        if self._heavy:  # the converter is behind with big values: hurry it
            self._hurry.set()
        with self._lock:
            self._entry_dropped += count
            self._dropped += count
            total = self._dropped
        if not self._drop_log.in_burst:
            self._drop_log.loss(count, total, self._entry_drop_reason())

    def _entry_drop_reason(self) -> str:
        if self._closing:
            return "tracekit shut down"
        if self._queue_limit < self._max_queue:
            return (
                f"{self._queue_limit} spans with large values already wait for conversion; "
                f"at most {RAW_BUDGET_BYTES >> 20} MB of them are held"
            )
        return f"the export queue is full; max_queue={self._max_queue}"

    def _start(self) -> None:
        with self._lock:
            if self._converter is not None:
                return
            self._deliverer = self._thread(self._deliver_loop, "tracekit-deliver")
            self._converter = self._thread(self._convert_loop, "tracekit-export")

    @staticmethod
    def _thread(target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def flush(self, timeout: float) -> bool:
        """Wait until every span produced before the call is delivered or lost.

        True only when all of them were exported: once a span has been
        dropped or has failed, flush() says False (`stats()` says how many).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            converter = self._converter
            if converter is None or not converter.is_alive() or self._abandoned:
                return self._queue_length() == 0 and self._dropped + self._failed() == 0
            request = _FlushRequest(deadline, self._entry_dropped)
            self._queue.append(request)
            self._markers_queued += 1
        self._wake.set()
        return request.done.wait(timeout) and request.lost == 0

    def shutdown(self, timeout: float) -> bool:
        """Deliver what is held within `timeout` seconds in all, then stop the threads.

        What could not be delivered in time is counted as dropped, and the
        cause is logged once.
        """
        deadline = time.monotonic() + timeout
        delivered = self.flush(timeout)
        self._closing = True
        self._wake.set()
        self._hurry.set()
        for thread in (self._converter, self._deliverer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._abandoned = True
            never_taken = self._queue_length()
            held = self._converting + self._outbox_spans + self._sending
            backend_silent = self._sending > 0
            self._entry_dropped += never_taken
            self._dropped += never_taken + held
            self._queue.clear()
            self._outbox.clear()
            self._markers_queued = self._converting = self._outbox_spans = self._sending = 0
            self._outbox_bytes = 0
        left = never_taken + held
        if left:
            error = self._attempt_error
            if self._exporter is None and held:
                cause = "the exporter was still starting"
            elif not backend_silent:
                cause = "still queued"
            elif error is None:
                cause = "the backend did not answer"
            else:
                cause = f"delivery kept failing with {type(error).__name__}: {error}"
            self._drop_log.loss(left, self._dropped, f"{cause} after {timeout:g} s at shutdown")
        counts = self.stats()
        if counts.dropped or counts.failed:
            logger.warning(
                "tracekit: %d of %d span(s) were not delivered (dropped %d, failed %d).",
                counts.dropped + counts.failed,
                counts.produced,
                counts.dropped,
                counts.failed,
            )
        return delivered and not left

    @property
    def project_name(self) -> str | None:
        return self._options.project_name

    def _queue_length(self) -> int:
        return len(self._queue) - self._markers_queued

    def _failed(self) -> int:
        return self._failed_converting + self._failed_delivering

    def stats(self) -> Stats:
        with self._lock:
            queued = self._queue_length()
            return Stats(
                produced=queued + self._taken + self._entry_dropped,
                queued=queued + self._outbox_spans,
                in_flight=self._converting + self._sending,
                exported=self._exported,
                dropped=self._dropped,
                failed=self._failed(),
            )

    # -- the conversion thread -----------------------------------------------------

    def _convert_loop(self) -> None:
        """Convert while the delivery thread waits on the backend, or values are big.

        In the usual case the delivery thread converts what it delivers, and
        this thread sleeps; it steps in so that a slow or stalled backend
        never makes the process keep the user's objects, and while the
        exporter is being made (in a busy program, importing and opening it
        can take seconds, while spans keep coming).
        """
        interval = min(self._options.flush_interval, STUCK_CHECK_SECONDS)
        while not self._closing and not self._is_abandoned():
            self._hurry.wait(interval)
            self._hurry.clear()
            self._rescue_if_stuck()
            try:
                # A chunk at a time: the delivery thread converts between chunks too.
                while self._delivery_waits() and self._convert_chunk():
                    pass
            except BaseException:  # never let the thread die
                logger.exception("tracekit: export thread error")

    def _delivery_waits(self) -> bool:
        """Is the delivery thread busy elsewhere than converting (or are values big)?"""
        return self._sending > 0 or self._heavy or self._exporter is None

    def _take(self) -> list[_Item | _FlushRequest]:
        with self._lock:
            if self._abandoned or self._outbox_full():
                return []  # converting now would only drop: the spans wait in the queue
            queue = self._queue
            taken = [queue.popleft() for _ in range(min(len(queue), self._batch_size))]
            markers = sum(1 for item in taken if type(item) is _FlushRequest)
            self._markers_queued -= markers
            self._taken += len(taken) - markers
            self._converting += len(taken) - markers
            return taken

    def _outbox_full(self) -> bool:
        """Whether converted records leave no room for another chunk in the buffer. Locked."""
        held = self._outbox_spans + self._converting
        return held > 0 and (
            held + self._batch_size > self._max_queue
            or self._outbox_bytes >= self._options.max_buffer_bytes
        )

    def _convert_chunk(self) -> bool:
        """Convert the next chunk (`batch_size` items) of the queue; whether there was one.

        The delivery thread converts one chunk, then delivers it: were it to
        convert all, a program producing spans faster than that would keep it
        converting, and nothing would ever be delivered.
        """
        options = self._options
        safe = json_safe_converter(options.limits, options.redactor)
        # Another thread may hold the lock for ever (a user's __repr__ that
        # hangs): wait in steps, and take its work over past the budget.
        while not (lock := self._convert_lock).acquire(timeout=STUCK_CHECK_SECONDS):
            self._rescue_if_stuck()
            if self._abandoned or self._is_abandoned():
                return False
        try:
            return self._convert_taken(safe)
        finally:
            lock.release()

    def _is_abandoned(self) -> bool:
        return threading.get_ident() in self._abandoned_threads

    def _convert_taken(self, safe: SafeConverter) -> bool:
        me = threading.get_ident()
        taken = self._take()
        if not taken:
            return False
        ready: list[_Converted | _FlushRequest | None] = []
        with self._lock:
            self._chunk, self._chunk_ready, self._chunk_owner = taken, ready, me
        for index, item in enumerate(taken):
            self._chunk_position, self._chunk_clock = index, time.monotonic()
            ready.append(self._convert(item, safe))
            if me in self._abandoned_threads:  # took too long: another thread has our work
                return False
        self._note_weight(safe.take_raw_size(), len(taken))
        del taken, item  # release the user's objects now, whatever delivery does
        self._to_outbox(ready)
        return True

    def _rescue_if_stuck(self) -> None:
        """Take over from a thread stuck converting one span for CONVERT_BUDGET_SECONDS.

        That span is counted as failed; the spans converted before it go on to
        the outbox, those after it back to the head of the queue, in order.
        The stuck thread is left behind (it cannot be stopped) and replaced.
        """
        with self._lock:
            chunk, owner = self._chunk, self._chunk_owner
            me = threading.get_ident()
            if (
                chunk is None
                or owner == me
                or time.monotonic() - self._chunk_clock < CONVERT_BUDGET_SECONDS
            ):
                return
            self._abandoned_threads.add(owner)
            position = self._chunk_position
            done = list(self._chunk_ready[:position])
            stuck, rest = chunk[position], chunk[position + 1 :]
            self._chunk = None
            self._convert_lock = threading.Lock()  # the stuck thread keeps the old one
            self._converting -= 1
            self._failed_converting += 1
            requeue = [item for item in rest if type(item) is not _FlushRequest]
            self._converting -= len(requeue)
            self._taken -= len(requeue)
            self._markers_queued += len(rest) - len(requeue)
            self._queue.extendleft(reversed(rest))
            failed = self._failed()
            name = getattr(stuck, "name", "?")
            restart_deliverer = self._deliverer is not None and self._deliverer.ident == owner
            restart_converter = self._converter is not None and self._converter.ident == owner
        self._to_outbox(done)
        self._fail_log.loss(
            1,
            failed,
            f"converting a value of span {name!r} took over {CONVERT_BUDGET_SECONDS:g} s "
            "(a __repr__, __str__ or property that hangs?); that span is skipped",
        )
        if restart_deliverer:
            self._deliverer = self._thread(self._deliver_loop, "tracekit-deliver")
        if restart_converter:
            self._converter = self._thread(self._convert_loop, "tracekit-export")
        self._wake.set()

    def _note_weight(self, raw_bytes: int, spans: int) -> None:
        """Follow the bytes per span, averaged over the last ~64 spans."""
        self._wake_at = self._batch_size
        weight = min(1.0, spans / 64) if self._raw_per_span else 1.0
        self._raw_per_span += weight * (raw_bytes / spans - self._raw_per_span)
        self._heavy = self._raw_per_span > HEAVY_SPAN_BYTES
        self._set_limits()

    def _set_limits(self) -> None:
        if self._heavy:
            raw = self._raw_per_span
            limit = max(4, int(RAW_BUDGET_BYTES / raw)) if raw else self._max_queue
            self._queue_limit = min(self._max_queue, limit)
            self._check_every = max(1, min(CONVERT_EVERY, self._queue_limit // 2))
        else:
            self._queue_limit = self._max_queue
            self._check_every = CONVERT_EVERY

    def _convert(
        self, item: _Item | _FlushRequest, safe: SafeConverter
    ) -> _Converted | _FlushRequest | None:
        """The span's records (None when it cannot be described), or the marker as is."""
        if type(item) is _FlushRequest:
            return item
        options = self._options
        try:
            if type(item) is LateFeedback:
                project = self._trace_projects.get(item.trace_id, options.project_name)
                late = feedback_record(item, safe, project)
                return _Converted(None, None, safe.take_size() + RECORD_OVERHEAD_BYTES, late)
            assert isinstance(item, Span)
            record = span_record(item, safe, options.project_name)
            trace = None
            if item.is_root:
                trace = trace_record(item, safe, options.project_name, record)
                if item.project_name is not None:
                    self._remember_project(trace)
        except Exception:  # a span that cannot be described is counted, not fatal
            safe.take_size()
            return None
        return _Converted(record, trace, safe.take_size() + RECORD_OVERHEAD_BYTES)

    def _remember_project(self, trace: TraceRecord) -> None:
        projects = self._trace_projects
        if trace.project_name is not None:
            projects[trace.id] = trace.project_name
            if len(projects) > REMEMBERED_TRACE_PROJECTS:
                projects.popitem(last=False)

    def _to_outbox(self, ready: list[_Converted | _FlushRequest | None]) -> None:
        full = unconvertible = 0
        limit_bytes = self._options.max_buffer_bytes
        with self._lock:
            if self._abandoned or self._is_abandoned():
                return
            if self._chunk_owner == threading.get_ident():
                self._chunk = None
            for item in ready:
                if item is None:
                    unconvertible += 1
                    self._converting -= 1
                    self._failed_converting += 1
                elif type(item) is _FlushRequest:
                    # Every span ahead of the marker has now been converted or lost.
                    item.lost += self._failed_converting + self._dropped_in_pipeline()
                    self._outbox.append(item)
                else:
                    assert isinstance(item, _Converted)
                    self._converting -= 1
                    if (
                        self._outbox_spans >= self._max_queue
                        or self._outbox_bytes + item.nbytes > limit_bytes
                    ):
                        full += 1
                        self._dropped += 1
                        continue
                    self._outbox.append(item)
                    self._outbox_spans += 1
                    self._outbox_bytes += item.nbytes
            dropped, failed = self._dropped, self._failed()
        self._wake.set()
        if unconvertible:
            self._fail_log.loss(unconvertible, failed, "a span could not be converted")
        if full:
            self._drop_log.loss(
                full,
                dropped,
                "the delivery buffer is full; "
                f"max_queue={self._max_queue}, max_buffer_bytes={limit_bytes}",
            )

    def _dropped_in_pipeline(self) -> int:
        return self._dropped - self._entry_dropped

    # -- the delivery thread -------------------------------------------------------

    def _deliver_loop(self) -> None:
        # Build the exporter now, not at the first batch: it may import a
        # library for seconds (opik), time a short program's exit cannot spare.
        with contextlib.suppress(BaseException):  # raised again, and counted, on export
            self._get_exporter()
        interval = min(self._options.flush_interval, STUCK_CHECK_SECONDS)
        while True:
            if not self._outbox:
                self._wake.wait(interval)
                self._wake.clear()
            if self._is_abandoned():
                return  # replaced after a conversion that hung; the new thread goes on
            self._rescue_if_stuck()
            try:
                while True:  # convert a chunk, deliver a batch, until both are done
                    converted = self._convert_chunk()
                    work = self._next_work()
                    if work is None:
                        if converted:
                            continue
                        break
                    if isinstance(work, _FlushRequest):
                        self._finish_flush(work)
                    else:
                        self._deliver(work)
            except BaseException:  # never let the thread die, whatever an exporter raises
                logger.exception("tracekit: export thread error")
            if self._abandoned or (self._closing and not self._queue and not self._outbox):
                break
        self._close_exporter()

    def _next_work(self) -> list[_Converted] | _FlushRequest | None:
        with self._lock:
            if not self._outbox or self._abandoned or self._is_abandoned():
                return None
            return self._next_batch()

    def _next_batch(self) -> list[_Converted] | _FlushRequest:
        """Up to `batch_size` records, or the flush marker at the head. Under the lock."""
        outbox = self._outbox
        head = outbox[0]
        if type(head) is _FlushRequest:
            outbox.popleft()
            return head
        batch: list[_Converted] = []
        while outbox and len(batch) < self._batch_size and type(outbox[0]) is _Converted:
            item = outbox.popleft()
            assert isinstance(item, _Converted)
            batch.append(item)
            self._outbox_bytes -= item.nbytes
        self._outbox_spans -= len(batch)
        self._sending += len(batch)
        return batch

    def _finish_flush(self, request: _FlushRequest) -> None:
        with self._lock:
            # Delivery is in order: every failure so far was ahead of the marker.
            request.lost += self._failed_delivering
        exporter = self._exporter
        if exporter is not None:
            try:
                if not exporter.flush(request.remaining()):
                    request.lost += 1
            except BaseException:
                log_once(
                    f"exporter-flush:{type(exporter).__name__}", "tracekit: exporter flush failed"
                )
                request.lost += 1
        request.done.set()

    def _get_exporter(self) -> Exporter:
        if self._exporter is None:
            self._exporter = self._make_exporter()
        return self._exporter

    def _deliver(self, items: list[_Converted]) -> None:
        error = self._send(_batch_of(items), retry=True)
        if error is None:
            self._settle(len(items), exported=True)
        elif isinstance(error, CONTENT_ERRORS) and len(items) > 1:
            self._deliver_one_by_one(items)
        else:
            self._settle(len(items), exported=False)
            self._fail_log.loss(len(items), self._failed(), f"{type(error).__name__}: {error}")

    def _deliver_one_by_one(self, items: list[_Converted]) -> None:
        """A batch the backend cannot take for its content: find the span(s) at fault.

        Each span is sent alone, once, so the one that cannot be encoded or
        stored fails alone and the rest of its batch is delivered.
        """
        for item in items:
            error = self._send(_batch_of([item]), retry=False)
            self._settle(1, exported=error is None)
            if error is not None:
                self._fail_log.loss(1, self._failed(), f"{type(error).__name__}: {error}")

    def _send(self, batch: Batch, retry: bool) -> BaseException | None:
        """Export `batch`, trying again after RETRY_DELAYS; the last error, or None."""
        error: BaseException | None = None
        try:
            delays = getattr(self._get_exporter(), "retry_delays", RETRY_DELAYS)
        except BaseException:
            delays = RETRY_DELAYS  # the attempts below raise it again, and count it
        for delay in (*(delays if retry else ()), None):
            try:
                self._get_exporter().export(batch)
            except BaseException as exc:  # an exporter's SystemExit must not stop delivery
                error = self._attempt_error = exc
                if delay is not None and not self._closing:
                    time.sleep(delay)
                continue
            error = None
            break
        self._attempt_error = None
        return error

    def _settle(self, count: int, exported: bool) -> None:
        with self._lock:
            if self._abandoned:  # shutdown already counted these as dropped
                return
            self._sending -= count
            if exported:
                self._exported += count
            else:
                self._failed_delivering += count
            drained = not self._outbox and not self._queue
        if exported:
            self._fail_log.recovered()  # the backend answers again
            if drained:  # the pressure that made spans drop is gone
                self._drop_log.recovered()

    def _close_exporter(self) -> None:
        exporter = self._exporter
        if exporter is not None:
            try:
                exporter.shutdown()
            except BaseException:
                logger.exception("tracekit: exporter shutdown failed")

    # -- fork ----------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """A forked child has no worker threads: start over, with its own exporter."""
        if self._exporter is not None:
            _inherited_exporters.append(self._exporter)
        self._start_fresh()


# Every processor is told about forks, so a child process exports its own spans.
_live_processors: weakref.WeakSet[BatchProcessor] = weakref.WeakSet()
_forking: list[BatchProcessor] = []


def _before_fork() -> None:
    """Fork only between two counted steps: the child's copy is then consistent."""
    _forking[:] = list(_live_processors)
    for processor in _forking:
        processor._lock.acquire()


def _after_fork_in_parent() -> None:
    for processor in _forking:
        processor._lock.release()
    _forking.clear()


def _after_fork_in_child() -> None:
    for processor in _forking:
        processor._after_fork_in_child()  # a new lock; the copied one stays held
    _forking.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
