"""The SQLite trace store: real write errors, private permissions, only our own files."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
from contextlib import closing
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
    _store.prepare_writes(conn)  # what connect() does: temporary objects, not the file
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


@pytest.mark.parametrize("umask", [0o000, 0o277], ids=["umask-000", "umask-277"])
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


def _version_1_store(path: Path) -> None:
    """A store as tracekit wrote it before stores carried an application_id."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in _store.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO spans (id, trace_id, name, type, start_ns, tags) "
            "VALUES ('old', 't-old', 'old', 'general', 1, '[]')"
        )


def _header(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as conn:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        return app_id, conn.execute("PRAGMA user_version").fetchone()[0]


@pytest.mark.parametrize("existing", [None, b""], ids=["missing", "empty"])
def test_a_new_store_carries_the_tracekit_application_id(
    tmp_path: Path, existing: bytes | None
) -> None:
    """A missing or 0-byte file becomes a store stamped with tracekit's application_id."""
    path = tmp_path / "traces.db"
    if existing is not None:
        path.write_bytes(existing)
    _store.connect(path, create=True).close()
    assert _header(path) == (_store.APPLICATION_ID, _store.SCHEMA_VERSION)


def test_a_version_1_store_is_stamped_when_opened_for_writing(tmp_path: Path) -> None:
    """A store from before application_id is recognized, stamped, and keeps its spans."""
    path = tmp_path / "traces.db"
    _version_1_store(path)
    conn = _store.connect(path, create=True)
    try:
        assert _header(path) == (_store.APPLICATION_ID, _store.SCHEMA_VERSION)
        assert [s.id for s in _store.load_spans(conn, "t-old")] == ["old"]
    finally:
        conn.close()


def test_the_reader_opens_a_version_1_store_without_changing_it(tmp_path: Path) -> None:
    """The CLI's read-only open reads a version-1 store and leaves its header alone."""
    path = tmp_path / "traces.db"
    _version_1_store(path)
    with closing(_store.connect(path, create=False)) as conn:
        assert [s.id for s in _store.load_spans(conn, "t-old")] == ["old"]
    assert _header(path) == (0, 1)


FOREIGN = {
    "other-tables": ["CREATE TABLE other (x)"],
    "other-tables-version-1": ["CREATE TABLE other (x)", "PRAGMA user_version = 1"],
    "other-application": [
        *_store.MIGRATIONS[0],
        "PRAGMA user_version = 1",
        "PRAGMA application_id = 1234",
    ],
    "only-another-application-id": ["PRAGMA application_id = 1234"],
}


@pytest.mark.parametrize("create", [True, False], ids=["writer", "reader"])
@pytest.mark.parametrize("statements", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(
    tmp_path: Path, statements: list[str], create: bool
) -> None:
    """Another program's database is refused by name and not changed by a single byte.

    Same bytes means: no table added, journal mode not switched to WAL,
    user_version and application_id as they were.
    """
    path = tmp_path / "theirs.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)
    before = path.read_bytes()
    with pytest.raises(_store.StoreError, match=f"^{re.escape(str(path))} is not a tracekit trace"):
        _store.connect(path, create=create)
    assert path.read_bytes() == before
    assert [file.name for file in tmp_path.iterdir()] == ["theirs.db"]


@pytest.mark.parametrize("create", [True, False], ids=["writer", "reader"])
def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_was(
    tmp_path: Path, create: bool
) -> None:
    """A file that is not an SQLite database is refused with that reason, bytes untouched."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(_store.StoreError) as raised:
        _store.connect(path, create=create)
    assert str(raised.value) == (
        f"cannot read {path}: it is not an SQLite database, so not a tracekit trace store"
    )
    assert path.read_bytes() == b"these are my notes, not a database\n" * 200


def test_a_store_from_a_newer_tracekit_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A store of ours with a newer schema is refused before anything is written to it."""
    path = tmp_path / "traces.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA application_id = {_store.APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {_store.SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(_store.StoreError, match="newer than this tracekit"):
        _store.connect(path, create=True)
    assert path.read_bytes() == before


def _ls_plan(conn: sqlite3.Connection, **filters: object) -> list[str]:
    """SQLite's query plan for each statement `list_traces(**filters)` runs."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        _store.list_traces(conn, **filters)  # type: ignore[arg-type]
    finally:
        conn.set_trace_callback(None)
    assert statements
    return [str(row[-1]) for sql in statements for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]


LS_FILTERS: dict[str, dict[str, object]] = {
    "none": {},
    "offset": {"offset": 40},
    "project": {"project": "bots"},
    "name": {"name": "chat"},
    "since": {"since_ns": 5},
    "errors": {"errors_only": True},
    "project-since": {"project": "bots", "since_ns": 5},
    "all": {"project": "bots", "name": "chat", "since_ns": 5, "errors_only": True},
}


@pytest.mark.parametrize("filters", LS_FILTERS.values(), ids=LS_FILTERS.keys())
def test_ls_reads_the_newest_traces_through_an_index(
    tmp_path: Path, filters: dict[str, object]
) -> None:
    """`tracekit ls` walks an index newest first, never the whole traces table nor a sort.

    Its cost is then that of the traces it shows, whatever the size of the store.
    """
    conn = _store.connect(tmp_path / "traces.db", create=True)
    try:
        plan = _ls_plan(conn, **filters)
    finally:
        conn.close()
    on_traces = [line for line in plan if re.match(r"(SCAN|SEARCH) t\b", line)]
    assert len(on_traces) == 1, plan
    assert "USING INDEX" in on_traces[0] or "USING COVERING INDEX" in on_traces[0], plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
    assert not any(re.match(r"SCAN (s|e|spans)\b", line) for line in plan), plan
    seeks = {key for key in ("project", "name", "since_ns") if key in filters}
    if seeks:  # a filter the index orders by: only the matching traces are read
        assert on_traces[0].startswith("SEARCH t"), plan


def test_a_version_2_store_gains_the_ls_indexes_when_opened_for_writing(tmp_path: Path) -> None:
    """An older store is listed as it is when read, and indexed when next written to."""
    path = tmp_path / "traces.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for steps in _store.MIGRATIONS[:2]:
            for statement in steps:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        conn.execute(f"PRAGMA application_id = {_store.APPLICATION_ID}")
        conn.execute(
            "INSERT INTO traces (id, name, project_name, start_ns, tags) "
            "VALUES ('t-old', 'old', 'bots', 1, '[]')"
        )

    def indexes(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {name for (name,) in rows if not name.startswith("sqlite_")}

    with closing(_store.connect(path, create=False)) as conn:
        listed = _store.list_traces(conn, project="bots", name="old", errors_only=False)
        assert [row.trace.id for row in listed] == ["t-old"]
        assert "traces_by_project" not in indexes(conn)
    with closing(_store.connect(path, create=True)) as conn:
        assert {"traces_by_project", "traces_by_name", "spans_with_errors"} <= indexes(conn)
        assert [row.trace.id for row in _store.list_traces(conn, project="bots")] == ["t-old"]
    assert _header(path) == (_store.APPLICATION_ID, _store.SCHEMA_VERSION)
