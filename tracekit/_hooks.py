"""Extension points that integrations add to, so the core never imports them.

Every hook point is a tuple of callables, empty until an integration adds
one. `add` and `remove` replace the whole tuple, so the core reads a hook
point with one attribute load, iterates it without a lock, and an
uninstrumented program pays one truth test. Two integrations on the same
point both run, in the order they were added.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tracekit._span import Span

__all__ = ["add", "at_exit", "before_flush", "choose_parent", "end_with_result", "remove"]

# `end_with_result(result, span, capture_output)`: called when a tracked call
# returns; True means that integration keeps `span` open and ends it itself
# (e.g. when a returned LiteLLM stream is exhausted). The first True wins.
end_with_result: tuple[Callable[[Any, Span, bool], bool], ...] = ()

# `choose_parent(parent)`: the parent a new span should really have, given the
# active tracekit span (or None) — e.g. a `@opik.track` span opened more
# recently than it. Each hook refines the previous one's answer.
choose_parent: tuple[Callable[[Span | None], Span | None], ...] = ()

# Called with a timeout by `tracekit.flush()` and at exit, before tracekit's
# own queue is flushed: integrations push out what their library still holds,
# and say whether all of it was delivered.
before_flush: tuple[Callable[[float], bool], ...] = ()

# Called with a timeout at exit (and SIGTERM) after `before_flush`, before the
# pipeline's last flush: e.g. to log calls that will now never finish.
at_exit: tuple[Callable[[float], None], ...] = ()

HookPoint = Literal["end_with_result", "choose_parent", "before_flush", "at_exit"]
_lock = threading.Lock()


def add(point: HookPoint, hook: Callable[..., Any]) -> None:
    """Add `hook` to `point` (once: adding it again changes nothing)."""
    with _lock:
        hooks: tuple[Callable[..., Any], ...] = globals()[point]
        if hook not in hooks:
            globals()[point] = (*hooks, hook)


def remove(point: HookPoint, hook: Callable[..., Any]) -> None:
    """Take `hook` off `point`, if it is there."""
    with _lock:
        hooks: tuple[Callable[..., Any], ...] = globals()[point]
        globals()[point] = tuple(h for h in hooks if h != hook)
