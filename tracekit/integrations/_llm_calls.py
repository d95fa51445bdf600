"""One LiteLLM call as tracekit follows it: from LiteLLM's setup to its result.

A `Call` is made when LiteLLM sets the call up, in the caller's context, so
its LLM span's parent is the span active there, wherever a stream is
consumed later. The LLM span is ended — or, when LiteLLM's own Opik callback
logs successes, dropped — exactly once, by whichever comes first: the result,
the failure, the end of the stream, or the call being given up (cancelled,
or a stream abandoned). Nothing here imports litellm.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from time import time_ns
from typing import Any

from tracekit._log import log_once
from tracekit._pipeline import emit
from tracekit.integrations._llm_spans import (
    LLMCallInterrupted,
    LLMSpan,
    StreamOwner,
    assistant_message,
    end_stream_owners,
    open_llm_span,
)

__all__ = [
    "Call",
    "awaiting_opik",
    "begin",
    "claim_for_callback",
    "live_calls",
]

Describe = Callable[[LLMSpan], None]
# Reads a stream's chunks (as far as they got) into its span.
DescribeStream = Callable[[LLMSpan, list[Any]], None]

_lock = threading.Lock()
# Calls whose LLM span has not ended yet, by litellm_call_id (oldest first).
live_calls: dict[str, Call] = {}
# Beyond this many open calls the oldest is given up: LiteLLM keeping calls
# alive forever must not grow memory without bound.
MAX_LIVE_CALLS = 10_000
# Successful calls LiteLLM's Opik callback has yet to log, by litellm_call_id.
awaiting_opik: dict[str, Call] = {}
# Calls tracekit logged itself because that callback could not: the callback
# skips them if it runs after all. Bounded: a callback that never runs leaves
# its id here until newer ones push it out.
_taken_over: OrderedDict[str, None] = OrderedDict()
# Calls the callback logged before tracekit saw them end: LiteLLM logs a
# stream's success as its last chunk goes out, before the consumer's next
# `__next__` tells tracekit. Bounded likewise.
_logged_early: OrderedDict[str, None] = OrderedDict()
_MAX_REMEMBERED = 10_000
# How many of the callback's logging calls are running now.
_callback_busy = 0
# Notified whenever an awaited call is logged, by either side.
opik_settled = threading.Condition(_lock)
# How often the loop watcher looks for closed event loops.
LOOP_CHECK_SECONDS = 0.02
_loop_watcher: threading.Thread | None = None


class Call:
    """A LiteLLM call in flight, and the spans that wait for its end."""

    __slots__ = (
        "call_id",
        "chunks",
        "describe_stream",
        "done",
        "end_ns",
        "kind",
        "last_chunk_ns",
        "logged_by_opik",
        "loop",
        "owners",
        "span",
        "stream",
        "watchers",
    )

    def __init__(self, call_id: str, kind: str, span: LLMSpan, logged_by_opik: bool) -> None:
        self.call_id = call_id
        self.kind = kind
        self.span = span
        self.logged_by_opik = logged_by_opik
        self.done = False
        self.stream = False  # True once LiteLLM returned a stream
        # Weak references whose death means the call was given up (see `watch`).
        self.watchers: list[weakref.ref[Any]] = []
        self.chunks: list[Any] | None = None
        self.describe_stream: DescribeStream | None = None
        self.last_chunk_ns: int | None = None
        # When the result (or the stream's last chunk) reached the caller.
        self.end_ns: int | None = None
        # The event loop whose task LiteLLM's async success callback runs on.
        self.loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        # Tracked calls that returned this call's stream: (span, capture_output).
        self.owners: list[StreamOwner] = []

    def watch(self, obj: Any) -> None:
        """Give the call up if `obj` (its LiteLLM logging object, its stream) dies first.

        A cancelled call and a stream dropped unread end that way: no LiteLLM
        callback ever reports them. The references live on this call, which
        `live_calls` keeps until it ends, so they cost nothing afterwards.
        """
        self.watchers.append(weakref.ref(obj, self._on_watched_death))

    def _on_watched_death(self, _: weakref.ref[Any]) -> None:
        self.give_up()

    def _claim(self) -> bool:
        """True for the one caller that gets to end this call."""
        with _lock:
            if self.done:
                return False
            self.done = True
            live_calls.pop(self.call_id, None)
        self.watchers.clear()
        return True

    def succeed(self, result: Any, describe: Describe) -> None:
        """The call returned `result` (not a stream) to the caller just now."""
        end_ns = time_ns()
        if not self._claim():
            return
        self.end_ns = end_ns
        span = self.span
        span._describe = describe  # (`describe_later`)
        if self.logged_by_opik:
            self._await_opik()
        elif span._end_ns is None:  # (`end_at`)
            span._end_ns = max(end_ns, span._start_ns)
            emit(span)

    def fail(self, error: BaseException) -> None:
        """The call, or its stream, raised `error`; logged by tracekit in every setup."""
        if not self._claim():
            return
        self.span.fail(error)
        if self.owners:
            end_stream_owners(self.owners, self._streamed_text(), completed=False, error=error)

    def finish_stream(self) -> None:
        """The consumer read the stream to its end."""
        if not self._claim():
            return
        self.end_ns = self.last_chunk_ns or time_ns()
        self._describe_stream_later()
        if self.logged_by_opik:
            self._await_opik()
        else:
            self.span.end_at(self.end_ns)
        if self.owners:
            end_stream_owners(self.owners, self._streamed_text(), completed=True)

    def give_up(self, interrupted_by: BaseException | None = None) -> None:
        """The call ended without a result: a stream abandoned, or a call cancelled.

        LiteLLM's own callbacks log neither, so tracekit logs the span in every
        setup. `interrupted_by` is what stopped a stream being read (a cancellation).
        """
        if not self._claim():
            return
        if self.stream:
            text = self._streamed_text()
            if self.describe_stream is not None:  # what was read of it
                self._describe_stream_later()
            else:
                self.span.output = assistant_message(text)
            metadata = {**(self.span.metadata or {}), "stream_completed": False}
            if interrupted_by is not None:
                metadata["interrupted_by"] = type(interrupted_by).__name__
            self.span.metadata = metadata
            self.span.end_at(self.last_chunk_ns)
            end_stream_owners(self.owners, text, completed=False)
        else:
            self.span.fail(LLMCallInterrupted("the LiteLLM call ended without a result"))

    def _describe_stream_later(self) -> None:
        describe = self.describe_stream
        if describe is None:
            return
        chunks = list(self.chunks or ())  # as they are now: the caller may clear the list
        self.span.describe_later(lambda span: describe(span, chunks))

    def _await_opik(self) -> None:
        """LiteLLM's Opik callback should log this success: keep the span in case it cannot."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a sync call: its callback runs on LiteLLM's threads
            loop = None
        with _lock:
            if self.call_id in _logged_early:  # the callback has logged it already
                del _logged_early[self.call_id]
                return
            awaiting_opik[self.call_id] = self
            if loop is not None:
                self.loop = weakref.ref(loop)
        if loop is not None:
            _watch_loops()

    def take_over(self) -> None:
        """Log this success now, as tracekit: LiteLLM's Opik callback cannot any more."""
        with opik_settled:
            if awaiting_opik.pop(self.call_id, None) is None:
                return  # the callback got to it first
            _remember(_taken_over, self.call_id)
            opik_settled.notify_all()
        self.span.end_at(self.end_ns)

    def _callback_cannot_run(self, flushing_loop: asyncio.AbstractEventLoop | None) -> bool:
        """Can the callback no longer log this call (or not while `flushing_loop` blocks)?"""
        if self.loop is None:
            return False
        loop = self.loop()
        return loop is None or loop.is_closed() or loop is flushing_loop

    def _streamed_text(self) -> str | None:
        chunks = self.chunks
        if chunks is None:
            return None
        parts: list[str] = []
        for chunk in list(chunks):
            try:
                content = chunk.choices[0].delta.content
            except (AttributeError, IndexError, TypeError):
                continue
            if isinstance(content, str):
                parts.append(content)
        return "".join(parts)


def _remember(ids: OrderedDict[str, None], call_id: str) -> None:
    ids[call_id] = None
    if len(ids) > _MAX_REMEMBERED:
        ids.popitem(last=False)


def _watch_loops() -> None:
    """Start the thread that notices event loops closing on awaited callbacks."""
    global _loop_watcher
    with _lock:
        if _loop_watcher is not None and _loop_watcher.is_alive():
            return
        _loop_watcher = threading.Thread(
            target=_take_over_from_closed_loops, name="tracekit-litellm-loops", daemon=True
        )
    _loop_watcher.start()


def _take_over_from_closed_loops() -> None:
    """While successes wait on an event loop's callback task: log those whose loop closed.

    LiteLLM runs its async success callbacks as tasks on the caller's loop;
    `asyncio.run` returning closes that loop with them still queued. Polled,
    because an event loop tells no one it closes; the thread ends when nothing waits.
    """
    while True:
        with _lock:
            waiting = [call for call in awaiting_opik.values() if call.loop is not None]
        if not waiting:
            return
        for call in waiting:
            if call._callback_cannot_run(None):
                call.take_over()
        threading.Event().wait(LOOP_CHECK_SECONDS)


def claim_for_callback(call_id: object) -> tuple[bool, int | None]:
    """LiteLLM's Opik callback is about to log `call_id`: may it, and when did the call end?

    False when tracekit already logged that call itself. The end is when the
    result (a stream's last chunk) reached the caller, if tracekit knows it:
    LiteLLM stamps a stream's end later, when its logging thread gets to it.
    Pair a True with `callback_done()` once the callback has handed the span
    to the opik client.
    """
    global _callback_busy
    if not isinstance(call_id, str):
        return True, None
    with opik_settled:
        if call_id in _taken_over:
            del _taken_over[call_id]
            return False, None
        call = awaiting_opik.pop(call_id, None)
        if call is None:
            _remember(_logged_early, call_id)
            call = live_calls.get(call_id)
        _callback_busy += 1
    return True, None if call is None else (call.end_ns or call.last_chunk_ns)


def callback_done() -> None:
    """The callback's logging call that `claim_for_callback` allowed has returned."""
    global _callback_busy
    with opik_settled:
        _callback_busy -= 1
        opik_settled.notify_all()


def take_over_unrunnable() -> None:
    """Log the awaited successes the callback can no longer log, now, as tracekit.

    Those whose event loop closed, or is the loop this very thread blocks.
    """
    try:
        flushing_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        flushing_loop = None
    with _lock:
        waiting = list(awaiting_opik.values())
    for call in waiting:
        if call._callback_cannot_run(flushing_loop):
            call.take_over()


def settle_awaited_calls(timeout: float) -> None:
    """Within `timeout`: every awaited success logged, by the callback or by tracekit.

    The callback gets until the deadline for those it can still log; tracekit
    logs the others at once, and what is left at the deadline.
    """
    take_over_unrunnable()
    with opik_settled:
        opik_settled.wait_for(lambda: not awaiting_opik and not _callback_busy, timeout)
        left = list(awaiting_opik.values())
    for call in left:
        call.take_over()


def begin(
    call_id: str,
    kind: str,
    kwargs: Mapping[str, Any],
    logged_by_opik: bool,
    proxied: bool = False,
) -> Call | None:
    """Open the LLM span of a call LiteLLM is setting up, under the active span.

    `kind` names the call whether it is made sync or async (`completion` for
    `acompletion` too), so spans of the same kind of call share one name.
    A `proxied` call goes through a LiteLLM proxy, which logs the LLM span:
    its client side is a `general` span (the proxy's LLM span nests under
    it), without usage or cost (they are the proxy's span's), and LiteLLM's
    own Opik callback on the client does not log it.
    """
    try:
        if proxied:
            span = open_llm_span(f"litellm_proxy.{kind}", kwargs, "general", ("litellm",))
            with opik_settled:
                _remember(_taken_over, call_id)  # the proxy logs the LLM span
        else:
            span = open_llm_span(f"litellm.{kind}", kwargs, "llm", ("litellm",))
        call = Call(call_id, kind, span, logged_by_opik)
        with _lock:
            live_calls[call_id] = call
            oldest = next(iter(live_calls.values())) if len(live_calls) > MAX_LIVE_CALLS else None
        if oldest is not None:
            log_once(
                "litellm:too-many",
                "tracekit: over %d LiteLLM calls open; giving up the oldest",
                MAX_LIVE_CALLS,
                exc_info=False,
            )
            oldest.give_up()
        return call
    except Exception:
        log_once("litellm:begin", "tracekit: could not open the LLM span of a LiteLLM call")
        return None
