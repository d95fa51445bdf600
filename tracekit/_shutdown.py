"""Exit and SIGTERM: deliver what tracekit holds, within one bounded wait.

At interpreter exit (and on SIGTERM, when the application has no handler of
its own) integrations are drained, then the export pipeline is flushed and
stopped — all of it within `exit_timeout` seconds in total.

Our `atexit` hook must run before the opik SDK's own (`close_all`), which
closes the client LiteLLM's Opik callback logs through. `atexit` runs hooks
last-registered-first, and opik registers its hook when it is first
imported — usually after tracekit — so whoever imports opik calls
`run_exit_hook_first()` afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
from types import FrameType

from tracekit import _hooks
from tracekit._log import log_once

__all__ = ["Deadline", "finish", "handle_sigterm", "run_exit_hook_first"]


class Deadline:
    """A point in time that several waits share: each gets what is left."""

    __slots__ = ("_at",)

    def __init__(self, timeout: float) -> None:
        self._at = time.monotonic() + timeout

    def remaining(self) -> float:
        return max(0.0, self._at - time.monotonic())


class _Finish:
    """Whether the last flush has started, where, and whether it is over."""

    def __init__(self) -> None:
        self.started = False
        self.thread: int | None = None  # the thread running it
        self.done = threading.Event()
        self.sigterm_pending = False  # SIGTERM came while this thread was finishing


_finish = _Finish()


def finish(timeout: float) -> None:
    """Drain integrations, then deliver and stop the pipeline: `timeout` seconds in all."""
    from tracekit import _config  # _config imports this module

    state = _finish
    if state.started:
        return
    state.started = True
    state.thread = threading.get_ident()
    try:
        deadline = Deadline(timeout)
        _config.run_before_flush(deadline.remaining())
        for hook in _hooks.at_exit:
            try:
                hook(deadline.remaining())
            except Exception:
                log_once(f"at_exit:{hook!r}", "tracekit: an exit hook failed")
        _config.shut_down_pipeline(deadline.remaining())
    finally:
        state.done.set()
        if state.sigterm_pending:
            _die_of_sigterm()


def _exit_timeout() -> float:
    from tracekit import _config

    return _config.exit_timeout()


def _at_exit() -> None:
    finish(_exit_timeout())


atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    """A forked child flushes its own spans when it ends.

    `multiprocessing` children (fork start method) end with `os._exit`, which
    skips `atexit`; they do run `threading._shutdown()`, and so the hooks
    registered with `threading._register_atexit` (as `concurrent.futures`
    does). A plain `os.fork()` child that returns normally runs both; the
    second call does nothing.
    """
    global _finish
    _finish = _Finish()
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is shutting down
            register(_at_exit)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_exit_hook_first() -> None:
    """Make tracekit's exit hook run before every hook registered so far."""
    atexit.unregister(_at_exit)
    atexit.register(_at_exit)


def _die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Deliver what is held, then die of SIGTERM as if tracekit were not there.

    SIGTERM often comes while the process is already exiting (a
    `multiprocessing.Pool` terminates workers that are flushing at their
    end): the flush under way is then finished first, never cut short.
    """
    state = _finish
    if state.started:
        if state.thread == threading.get_ident():
            state.sigterm_pending = True  # finish(), below us on this stack, dies when done
            return
        state.done.wait(_exit_timeout())
        _die_of_sigterm()
        return
    try:
        finish(_exit_timeout())
    finally:
        _die_of_sigterm()


def handle_sigterm(enabled: bool) -> None:
    """Install (or remove) tracekit's SIGTERM handler.

    Installed only from the main thread, on POSIX, and only in place of the
    default action: an application's own handler is never replaced.
    """
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
        if enabled and current is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
        elif not enabled and current is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):  # e.g. an embedded interpreter without signals
        log_once("sigterm", "tracekit: could not install the SIGTERM handler")
