"""Imports made on tracekit's own threads, which a fork must never interrupt.

A module is imported under a lock of its own. A process forked while another
of its threads is importing copies that lock held, by a thread the child
does not have: the child's first import of the same module then waits for
ever. So a fork waits until no import of ours is under way.
"""

from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType

__all__ = ["import_module"]

_importing = threading.Lock()


def import_module(name: str) -> ModuleType:
    """`importlib.import_module(name)`, with no fork in the middle."""
    with _importing:
        return importlib.import_module(name)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_importing.acquire,
        after_in_parent=_importing.release,
        after_in_child=_importing.release,
    )
