"""The SQLite trace store: real write errors, private permissions, only our own files."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
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


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _store_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_a_new_store_and_its_folders_are_private_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    """Every folder tracekit creates is 0700; the file, its -wal and -shm are 0600."""
    path = tmp_path / "outer" / "inner" / "traces.db"
    previous = os.umask(umask)
    try:
        conn = _store.connect(path, create=True)
        _store.write_batch(conn, _batch(1))
    finally:
        os.umask(previous)
    try:
        assert [_mode(folder) for folder in (path.parent.parent, path.parent)] == [0o700, 0o700]
        assert [_mode(file) for file in _store_files(path)] == [0o600, 0o600, 0o600]
    finally:
        conn.close()


def test_an_existing_store_readable_by_others_is_tightened_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store of ours at 0644, with its -wal and -shm, becomes 0600; one line says so."""
    path = tmp_path / "traces.db"
    _store.connect(path, create=True).close()
    holder = sqlite3.connect(path)  # keeps the -wal and -shm files in place
    holder.execute("SELECT COUNT(*) FROM spans").fetchone()
    try:
        for file in _store_files(path):
            file.chmod(0o644)
        with caplog.at_level(logging.INFO, logger="tracekit"):
            _store.connect(path, create=True).close()
        assert [_mode(file) for file in _store_files(path)] == [0o600, 0o600, 0o600]
    finally:
        holder.close()
    assert len(caplog.records) == 1
    assert str(path) in caplog.records[0].getMessage()


def test_a_store_owned_by_someone_else_keeps_its_mode(tmp_path: Path) -> None:
    """Only the owner's own files are tightened: another user's store is not ours to chmod."""
    path = tmp_path / "traces.db"
    _store.connect(path, create=True).close()
    path.chmod(0o644)
    os.chown(path, os.getuid() + 1, -1)
    _store.connect(path, create=True).close()
    assert _mode(path) == 0o644
