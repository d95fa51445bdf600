"""The embedded default: every span and trace in a local SQLite file.

Fork safety: SQLite keeps per-process lock state for each open file, and a
child forked while the parent opens or writes the store inherits it
half-held: its own writes then wait forever. So a fork waits until no SQLite
work of ours is in progress (opening, writing and closing hold `_writing`),
and the child never touches the parent's connection: its exporter is
replaced by a new one (see `BatchProcessor`), and the inherited connection is
kept open, unused, because closing it could disturb the parent's WAL files.
"""

from __future__ import annotations

import sqlite3
import weakref
from pathlib import Path

from tracekit._forks import on_fork_in_child
from tracekit._forks import sqlite_work as _writing
from tracekit._records import Batch
from tracekit._store import connect, write_batch

__all__ = ["SQLiteExporter"]

_live: weakref.WeakSet[SQLiteExporter] = weakref.WeakSet()
# Connections a forked child inherited: never used, never closed.
_inherited: list[sqlite3.Connection] = []


class SQLiteExporter:
    """Appends batches to the trace store at `path` (see `tracekit._store`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _writing:  # opening may create or migrate the store: no fork meanwhile
            self._conn: sqlite3.Connection | None = connect(path, create=True)
            _live.add(self)

    def export(self, batch: Batch) -> None:
        with _writing:
            if self._conn is None:
                raise RuntimeError("this trace store connection belongs to the parent process")
            write_batch(self._conn, batch)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        with _writing:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _forget_in_child(self) -> None:
        if self._conn is not None:
            _inherited.append(self._conn)
            self._conn = None


def _forget_connections_in_child() -> None:
    for exporter in list(_live):
        exporter._forget_in_child()


on_fork_in_child(_forget_connections_in_child)
