"""The SQLite trace store: real write errors, private permissions, only our own files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tracekit import _store
from tracekit._records import Batch, SpanRecord


def _batch(count: int, size: int = 0) -> Batch:
    return Batch(
        spans=[
            SpanRecord(
                id=f"span-{i}",
                trace_id="trace-1",
                parent_id=None,
                name="s",
                type="general",
                start_ns=i,
                end_ns=i + 1,
                input="x" * size,
            )
            for i in range(count)
        ]
    )


def test_a_full_disk_is_reported_as_such(tmp_path: Path) -> None:
    """A write that fills the disk raises "database or disk is full" with the store's path.

    `PRAGMA max_page_count` makes SQLite fail with SQLITE_FULL, as a full disk
    does; SQLite has then already rolled the transaction back itself, so a
    second ROLLBACK must not hide the real error behind "no transaction is
    active".
    """
    path = tmp_path / "traces.db"
    conn = _store.connect(path, create=True)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(_store.StoreError) as raised:
        _store.write_batch(conn, _batch(100, size=10_000))
    assert str(raised.value) == (
        f"cannot write to the trace store at {path}: database or disk is full"
    )
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert not conn.in_transaction
    _store.write_batch(conn, _batch(1))  # the connection is still usable afterwards
    conn.close()


def test_a_read_only_store_is_reported_as_such(tmp_path: Path) -> None:
    """A write to a store SQLite opened read-only raises "readonly database" with the path.

    Tests run as root, which ignores file modes, so chmod cannot make the file
    unwritable here. Opening it with the `mode=ro` URI puts the connection in
    the state SQLite itself chooses for a file the process may not write:
    every write fails with SQLITE_READONLY inside write_batch's transaction.
    """
    path = tmp_path / "traces.db"
    _store.connect(path, create=True).close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(_store.StoreError) as raised:
        _store.write_batch(conn, _batch(1))
    assert str(raised.value) == (
        f"cannot write to the trace store at {path}: attempt to write a readonly database"
    )
    assert not conn.in_transaction
    conn.close()
