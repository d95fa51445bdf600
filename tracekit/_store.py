"""The local SQLite trace store: schema, migrations, writes and reads.

One file holds many processes' traces: WAL mode lets readers (the CLI) work
while writers append, and a busy timeout serializes writers from several
processes. The schema version lives in `PRAGMA user_version`; `MIGRATIONS`
lists the steps from each version to the next, applied in one transaction.
`PRAGMA application_id` marks the file as ours; anything else is left alone.
The file may hold prompts, so the folders we create are 0700 and the file,
its -wal and -shm 0600, whatever the umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from tracekit._log import logger
from tracekit._records import Batch, SpanRecord, TraceRecord

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "StoreError",
    "TraceSummary",
    "connect",
    "iter_spans",
    "list_traces",
    "load_spans",
    "load_trace",
    "resolve_trace_id",
    "write_batch",
]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # version 0 -> 1
    (
        """CREATE TABLE traces (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, project_name TEXT, thread_id TEXT,
            start_ns INTEGER NOT NULL, end_ns INTEGER, input TEXT, output TEXT,
            metadata TEXT, tags TEXT NOT NULL, error_info TEXT)""",
        """CREATE TABLE spans (
            id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent_id TEXT,
            name TEXT NOT NULL, type TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
            input TEXT, output TEXT, metadata TEXT, tags TEXT NOT NULL, project_name TEXT,
            thread_id TEXT, usage TEXT, model TEXT, provider TEXT, total_cost REAL,
            error_info TEXT)""",
        "CREATE INDEX spans_by_trace ON spans (trace_id)",
        "CREATE INDEX traces_by_start ON traces (start_ns)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
# Marks a file as ours in its header (`PRAGMA application_id`), so we never
# write into another program's database. Not part of the schema version: an
# older tracekit ignores it and keeps writing the same tables.
APPLICATION_ID = int.from_bytes(b"TkTr", "big")
_TABLES = frozenset({"spans", "traces"})

_SPAN_COLUMNS = (
    "id, trace_id, parent_id, name, type, start_ns, end_ns, input, output, metadata, "
    "tags, project_name, thread_id, usage, model, provider, total_cost, error_info"
)
_TRACE_COLUMNS = (
    "id, name, project_name, thread_id, start_ns, end_ns, input, output, metadata, tags, error_info"
)


class StoreError(Exception):
    """The trace file is missing, unreadable, unwritable, or not a tracekit store."""


def _make_private_folders(folder: Path) -> None:
    """Create `folder` and its missing parents, each 0700 whatever the umask."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(created, 0o700)  # mkdir's mode is cut by the umask


def _create_private_file(path: Path) -> None:
    _make_private_folders(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # the umask may have cut the owner's bits too
    finally:
        os.close(fd)


def _store_files(path: Path) -> tuple[Path, ...]:
    # SQLite gives the -wal and -shm it creates the main file's mode, umask or not.
    return (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))


def _tighten(path: Path) -> None:
    """Take group and other permissions off the user's own store, its -wal and -shm."""
    loosened = []
    for file in _store_files(path):
        with contextlib.suppress(FileNotFoundError):
            st = file.stat()
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                loosened.append(file)
                os.chmod(file, stat.S_IMODE(st.st_mode) & 0o700)
    if loosened:
        logger.warning(
            "tracekit: the trace store %s was open to other users; made owner-only: %s",
            path,
            ", ".join(file.name for file in loosened),
        )


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"trace store schema version {version} is newer than this tracekit ({SCHEMA_VERSION})"
        )


def _unmarked_is_ours(version: int, tables: set[str]) -> bool:
    """Whether a file without an application_id is ours: new, or written before we set it."""
    if not tables:
        return version == 0 or version > SCHEMA_VERSION  # empty, or refused as newer
    return version >= 1 and tables >= _TABLES


def _identify(conn: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """The file's (application_id, user_version), read without writing; foreign files refused."""
    conn.execute("BEGIN")  # one snapshot: another process may be creating the store meanwhile
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND substr(name, 1, 7) != 'sqlite_'"
            )
        }
    finally:
        _rollback(conn)
    if app_id != APPLICATION_ID and not (app_id == 0 and _unmarked_is_ours(version, tables)):
        raise StoreError(f"{path} is not a tracekit trace store (it belongs to another program)")
    return app_id, version


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION and stamp APPLICATION_ID, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        _refuse_newer(version)
        for steps in MIGRATIONS[version:]:
            for statement in steps:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open the store at `path`; with `create`, make it (0600, folders 0700) or upgrade it.

    A file is first identified by reading its header and tables only: a file
    that is not SQLite, belongs to another program, or comes from a newer
    tracekit raises `StoreError` and is left exactly as it was.
    """
    if create:
        _create_private_file(path)
    elif not path.is_file():
        raise StoreError(f"no trace store at {path}")
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc, create) from exc
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        app_id, version = _identify(conn, path)
        if not create:
            if version == 0:
                raise StoreError(f"{path} is not a tracekit trace store (it is empty)")
            return conn
        _refuse_newer(version)
        _tighten(path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if (app_id, version) != (APPLICATION_ID, SCHEMA_VERSION):
            _migrate(conn)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise _open_error(path, exc, create) from exc
        raise
    return conn


def _open_error(path: Path, exc: sqlite3.DatabaseError, create: bool) -> StoreError:
    if exc.sqlite_errorname == "SQLITE_NOTADB":
        return StoreError(
            f"cannot read {path}: it is not an SQLite database, so not a tracekit trace store"
        )
    return StoreError(f"cannot {'open the trace store at' if create else 'read'} {path}: {exc}")


# One encoder for every row: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _json(value: Any) -> str | None:
    return None if value is None else _encode(value)


def _json_tags(tags: list[str]) -> str:
    return _encode(tags) if tags else "[]"


def _span_row(span: SpanRecord) -> tuple[Any, ...]:
    return (
        span.id,
        span.trace_id,
        span.parent_id,
        span.name,
        span.type,
        span.start_ns,
        span.end_ns,
        _json(span.input),
        _json(span.output),
        _json(span.metadata),
        _json_tags(span.tags),
        span.project_name,
        span.thread_id,
        _json(span.usage),
        span.model,
        span.provider,
        span.total_cost,
        _json(span.error_info),
    )


def _trace_row(trace: TraceRecord) -> tuple[Any, ...]:
    return (
        trace.id,
        trace.name,
        trace.project_name,
        trace.thread_id,
        trace.start_ns,
        trace.end_ns,
        _json(trace.input),
        _json(trace.output),
        _json(trace.metadata),
        _json_tags(trace.tags),
        _json(trace.error_info),
    )


def write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    """Insert (or replace) a batch's spans and traces in one transaction.

    A failed write (disk full, read-only file, lock timeout) raises `StoreError`
    naming the file and SQLite's own reason; nothing of the batch is kept.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if batch.spans:
            conn.executemany(
                f"INSERT OR REPLACE INTO spans ({_SPAN_COLUMNS}) VALUES ({', '.join('?' * 18)})",
                [_span_row(s) for s in batch.spans],
            )
        if batch.traces:
            conn.executemany(
                f"INSERT OR REPLACE INTO traces ({_TRACE_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                [_trace_row(t) for t in batch.traces],
            )
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"cannot write to the trace store at {_path_of(conn)}: {exc}") from exc
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open, never hiding the error that got us here.

    On some errors (SQLITE_FULL, SQLITE_IOERR, ...) SQLite has already rolled
    back by itself, and a ROLLBACK would fail with "no transaction is active".
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _path_of(conn: sqlite3.Connection) -> str:
    try:
        return str(conn.execute("PRAGMA database_list").fetchone()[2]) or "(memory)"
    except sqlite3.Error:
        return "(unknown path)"


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _span_from_row(row: Sequence[Any]) -> SpanRecord:
    return SpanRecord(
        id=row[0],
        trace_id=row[1],
        parent_id=row[2],
        name=row[3],
        type=row[4],
        start_ns=row[5],
        end_ns=row[6],
        input=_loads(row[7]),
        output=_loads(row[8]),
        metadata=_loads(row[9]),
        tags=_loads(row[10]) or [],
        project_name=row[11],
        thread_id=row[12],
        usage=_loads(row[13]),
        model=row[14],
        provider=row[15],
        total_cost=row[16],
        error_info=_loads(row[17]),
    )


def _trace_from_row(row: Sequence[Any]) -> TraceRecord:
    return TraceRecord(
        id=row[0],
        name=row[1],
        project_name=row[2],
        thread_id=row[3],
        start_ns=row[4],
        end_ns=row[5],
        input=_loads(row[6]),
        output=_loads(row[7]),
        metadata=_loads(row[8]),
        tags=_loads(row[9]) or [],
        error_info=_loads(row[10]),
    )


class TraceSummary:
    """One line of `tracekit ls`."""

    __slots__ = ("errors", "span_count", "total_cost", "total_tokens", "trace")

    def __init__(
        self,
        trace: TraceRecord,
        span_count: int,
        errors: int,
        total_tokens: int | None,
        total_cost: float | None,
    ) -> None:
        self.trace = trace
        self.span_count = span_count
        self.errors = errors
        self.total_tokens = total_tokens
        self.total_cost = total_cost


def list_traces(
    conn: sqlite3.Connection,
    *,
    limit: int = 20,
    project: str | None = None,
    errors_only: bool = False,
) -> list[TraceSummary]:
    """The most recent traces first, with span, error, token and cost totals."""
    query = f"""
        SELECT {", ".join("t." + c.strip() for c in _TRACE_COLUMNS.split(","))},
               COUNT(s.id),
               COUNT(s.error_info),
               SUM(json_extract(s.usage, '$.total_tokens')),
               SUM(s.total_cost)
        FROM traces t LEFT JOIN spans s ON s.trace_id = t.id
        WHERE (:project IS NULL OR t.project_name = :project)
        GROUP BY t.id
        HAVING NOT :errors_only OR COUNT(s.error_info) > 0
        ORDER BY t.start_ns DESC
        LIMIT :limit
    """
    rows = conn.execute(
        query, {"project": project, "errors_only": errors_only, "limit": limit}
    ).fetchall()
    return [
        TraceSummary(_trace_from_row(row[:11]), row[11], row[12] or 0, row[13], row[14])
        for row in rows
    ]


def resolve_trace_id(conn: sqlite3.Connection, trace_id: str) -> str:
    """`trace_id` itself, the latest trace for "last", or a unique id prefix."""
    if trace_id == "last":
        row = conn.execute("SELECT id FROM traces ORDER BY start_ns DESC LIMIT 1").fetchone()
        if row is None:
            raise StoreError("the trace store holds no trace yet")
        return str(row[0])
    rows = conn.execute(
        """SELECT id FROM traces WHERE id LIKE :prefix || '%'
           UNION SELECT DISTINCT trace_id FROM spans WHERE trace_id LIKE :prefix || '%'
           LIMIT 2""",
        {"prefix": trace_id},
    ).fetchall()
    if not rows:
        raise StoreError(f"no trace with id {trace_id!r}")
    if len(rows) > 1:
        raise StoreError(f"{trace_id!r} matches several traces; give more of the id")
    return str(rows[0][0])


def load_trace(conn: sqlite3.Connection, trace_id: str) -> TraceRecord | None:
    """The trace record, or None when its root never ended (its spans may still exist)."""
    row = conn.execute(f"SELECT {_TRACE_COLUMNS} FROM traces WHERE id = ?", (trace_id,)).fetchone()
    return None if row is None else _trace_from_row(row)


def load_spans(conn: sqlite3.Connection, trace_id: str) -> list[SpanRecord]:
    """The trace's spans in start order."""
    rows = conn.execute(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns",
        (trace_id,),
    ).fetchall()
    return [_span_from_row(row) for row in rows]


def iter_spans(conn: sqlite3.Connection, since: datetime | None = None) -> Iterator[SpanRecord]:
    """Every span, oldest first, optionally only those started at or after `since`."""
    query = f"SELECT {_SPAN_COLUMNS} FROM spans"
    params: tuple[Any, ...] = ()
    if since is not None:
        query += " WHERE start_ns >= ?"
        params = (min(round(since.timestamp() * 1e9), 2**63 - 1),)  # SQLite ints are 64-bit
    with closing(conn.execute(query + " ORDER BY start_ns", params)) as cursor:
        for row in cursor:
            yield _span_from_row(row)
