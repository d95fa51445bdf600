"""What a fork must wait for: tracekit's SQLite work and its imports on its own threads.

A child copies the parent's memory but only the thread that forked. A lock
another thread held at that moment stays held in the child, by no one:

- SQLite keeps per-process lock state for each open file; a child forked
  while the parent opens or writes the store inherits it half-held, and its
  own writes then wait for ever. `sqlite_work` is held around every open,
  write and close of ours, and by a fork.
- Python imports a module under a lock of its own; a child forked while an
  export thread imports an exporter (opik: seconds) could never import it.
  `import_module` holds `_importing`, and so does a fork.

These hooks are registered when tracekit is imported, before the export
pipeline's own, so a fork always takes these locks last and, in the child,
frees them first: the SQLite exporter is imported later, on the export thread.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from types import ModuleType

__all__ = ["import_module", "on_fork_in_child", "sqlite_work"]

sqlite_work = threading.Lock()
_importing = threading.Lock()
_child_hooks: list[Callable[[], None]] = []


def import_module(name: str) -> ModuleType:
    """`importlib.import_module(name)`, with no fork in the middle."""
    with _importing:
        return importlib.import_module(name)


def on_fork_in_child(hook: Callable[[], None]) -> None:
    """Call `hook` in a forked child, before the locks above are freed there."""
    _child_hooks.append(hook)


def _before_fork() -> None:
    _importing.acquire()
    sqlite_work.acquire()


def _after_fork_in_parent() -> None:
    sqlite_work.release()
    _importing.release()


def _after_fork_in_child() -> None:
    for hook in _child_hooks:
        hook()
    sqlite_work.release()
    _importing.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
