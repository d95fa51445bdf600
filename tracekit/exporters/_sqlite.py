"""The embedded default: every span and trace in a local SQLite file."""

from __future__ import annotations

from pathlib import Path

from tracekit._records import Batch
from tracekit._store import connect, write_batch

__all__ = ["SQLiteExporter"]


class SQLiteExporter:
    """Appends batches to the trace store at `path` (see `tracekit._store`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, create=True)

    def export(self, batch: Batch) -> None:
        write_batch(self._conn, batch)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        self._conn.close()
