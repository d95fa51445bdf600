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
import dataclasses
import json
import operator
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tracekit._log import logger
from tracekit._records import Batch, FeedbackRecord, FeedbackScore, SpanRecord, TraceRecord

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "StoreError",
    "TraceSummary",
    "connect",
    "iter_spans",
    "list_traces",
    "load_scores",
    "load_spans",
    "load_trace",
    "prepare_writes",
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
    # version 1 -> 2: feedback scores; span_id NULL is a score of the trace
    (
        """CREATE TABLE feedback_scores (
            trace_id TEXT NOT NULL, span_id TEXT, name TEXT NOT NULL, value REAL NOT NULL,
            reason TEXT, category_name TEXT, project_name TEXT, created_ns INTEGER NOT NULL)""",
        # One score per name on a span or trace: a new one replaces it (as in Opik).
        """CREATE UNIQUE INDEX feedback_scores_by_target
            ON feedback_scores (trace_id, ifnull(span_id, ''), name)""",
    ),
    # version 2 -> 3: `tracekit ls --project/--name/--errors` seek their traces newest
    # first instead of walking the whole table (an older store is read without them).
    (
        "CREATE INDEX traces_by_project ON traces (project_name, start_ns)",
        "CREATE INDEX traces_by_name ON traces (name, start_ns)",
        "CREATE INDEX spans_with_errors ON spans (trace_id) WHERE error_info IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
# Marks a file as ours in its header (`PRAGMA application_id`), so we never
# write into another program's database. Not part of the schema version: an
# older tracekit ignores it and keeps writing the same tables.
APPLICATION_ID = int.from_bytes(b"TkTr", "big")
_TABLES = frozenset({"spans", "traces"})  # what every version of the store has


class _Table:
    """How one record type is stored: a column per field, named like it.

    Text and number fields are stored as they are; every other field as
    JSON. Fields listed in `_STORED_APART` live in tables of their own. A
    new record field thus needs only a migration adding its column (a test
    checks that the migrated schema and the records agree).
    """

    def __init__(self, name: str, record: type[Any], stored_apart: frozenset[str]) -> None:
        fields = [f for f in dataclasses.fields(record) if f.name not in stored_apart]
        self.name = name
        self.record = record
        self.columns = tuple(f.name for f in fields)
        self._json = tuple(f.type not in _PLAIN_TYPES for f in fields)
        self._lists = tuple(f.default_factory is list for f in fields)
        self.select: str = ", ".join(self.columns)
        self.insert: str = (
            f"INSERT OR REPLACE INTO {name} ({self.select})"
            f" VALUES ({', '.join('?' * len(self.columns))})"
        )
        self._values = operator.attrgetter(*self.columns)
        self._json_at = tuple(i for i, is_json in enumerate(self._json) if is_json)

    def row(self, record: Any) -> tuple[Any, ...]:
        values = [getattr(record, column) for column in self.columns]
        return tuple(
            _encode(value) if is_json and value is not None else value
            for value, is_json in zip(values, self._json, strict=True)
        )

    def insert_row(self, row: str) -> str:
        """An insert of the row that SQL expression `row` gives, a JSON array (see `rows_json`)."""
        reads = ", ".join(
            (f"nullif({row} -> {i}, 'null')" if _ARROW else f"json_extract({row}, '$[{i}]')")
            if is_json
            else f"json_extract({row}, '$[{i}]')"
            for i, is_json in enumerate(self._json)
        )
        return f"INSERT OR REPLACE INTO {self.name} ({self.select}) SELECT {reads}"

    def rows_json(self, records: Iterable[Any]) -> bytes:
        """`records` as one JSON array of rows, for `insert_json`.

        One statement per batch, not one per row: sqlite3's executemany lets
        go of the GIL for every row, and a busy program keeps each re-take
        waiting up to its switch interval (5 ms), so export fell far behind.
        """
        values = self._values
        if _ARROW:
            return _dumps([values(record) for record in records])
        rows = []
        for record in records:
            row = list(values(record))
            for i in self._json_at:
                if row[i] is not None:
                    row[i] = _dumps(row[i]).decode()
            rows.append(row)
        return _dumps(rows)

    def record_of(self, row: Sequence[Any]) -> Any:
        fields = {}
        for column, value, is_json, is_list in zip(
            self.columns, row, self._json, self._lists, strict=True
        ):
            if is_json and value is not None:
                value = json.loads(value)
            fields[column] = value if value is not None or not is_list else []
        return self.record(**fields)


# How a JSON column is read from a row of `rows_json`: SQLite 3.38+ gives its
# JSON text with `->` (JSON null: SQL NULL); older ones get it pre-encoded as
# a JSON string, which json_extract returns as is.
_ARROW = sqlite3.sqlite_version_info >= (3, 38, 0)

# Field types stored as they are (the records' annotations, as text).
_PLAIN_TYPES = frozenset({"str", "str | None", "int", "int | None", "float", "float | None"})
_STORED_APART = frozenset({"feedback_scores"})  # in FEEDBACK, one row per score


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
    elif path.is_dir():
        raise StoreError(f"{path.absolute()} is a folder, not a trace store (a file)")
    elif not path.is_file():
        where = "" if path.is_absolute() else " (relative to the current directory)"
        raise StoreError(f"no trace store at {path.absolute()}{where}; run a traced program first")
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
        prepare_writes(conn)
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


def _dumps(value: Any) -> bytes:
    """JSON bytes, by orjson; the standard encoder for what orjson refuses (ints past 64 bits)."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return _encode(value).encode("utf-8")  # a lone surrogate still fails: one span's fault


SPANS = _Table("spans", SpanRecord, _STORED_APART)
TRACES = _Table("traces", TraceRecord, _STORED_APART)
FEEDBACK = _Table("feedback_scores", FeedbackRecord, frozenset())
# A score replaces one of its name on the same span or trace only if given later:
# a trace's own scores are written when it ends, maybe after a late score.
_SCORE_UPSERT = (
    FEEDBACK.insert.replace("INSERT OR REPLACE", "INSERT", 1)
    + " ON CONFLICT (trace_id, ifnull(span_id, ''), name) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in FEEDBACK.columns)
    + f" WHERE excluded.created_ns >= {FEEDBACK.name}.created_ns"
)


def _score_rows(batch: Batch) -> list[tuple[Any, ...]]:
    """Every score the batch carries: those given while spans ran, then the late ones."""
    records = [
        *(
            FeedbackRecord.of(score, span.trace_id, span.id, span.project_name)
            for span in batch.spans
            for score in span.feedback_scores
        ),
        *(
            FeedbackRecord.of(score, trace.id, None, trace.project_name)
            for trace in batch.traces
            for score in trace.feedback_scores
        ),
    ]
    return [FEEDBACK.row(record) for record in (*records, *batch.feedback)]


# A batch's spans and traces are written by one statement, one transaction of
# its own: each statement lets go of the GIL, and in a busy program taking it
# back waits up to the switch interval (5 ms), so statements are few. The
# statement inserts (kind, row) pairs into a view of this connection's own,
# whose trigger puts each row in its table.
_BATCH_VIEW = "tracekit_batch"
_INSERT_BATCH = (
    f"INSERT INTO temp.{_BATCH_VIEW} (kind, row)"
    " SELECT 's', value FROM json_each(?1) UNION ALL SELECT 't', value FROM json_each(?2)"
)


def prepare_writes(conn: sqlite3.Connection) -> None:
    """Create the connection's temporary view that `write_batch` inserts into.

    Its trigger finds the tables in the schema as this connection last read
    it: read it now, as another process may have just created them.
    """
    conn.execute("SELECT count(*) FROM main.sqlite_master").fetchone()
    conn.execute(f"CREATE TEMP VIEW IF NOT EXISTS {_BATCH_VIEW} (kind, row) AS SELECT NULL, NULL")
    conn.execute(
        f"CREATE TEMP TRIGGER IF NOT EXISTS {_BATCH_VIEW}_rows"
        f" INSTEAD OF INSERT ON {_BATCH_VIEW} BEGIN"
        f" {SPANS.insert_row('NEW.row')} WHERE NEW.kind = 's';"
        f" {TRACES.insert_row('NEW.row')} WHERE NEW.kind = 't';"
        " END"
    )


def write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    """Insert (or replace) a batch's spans and traces, all or nothing.

    `conn` comes from `connect(..., create=True)` (or had `prepare_writes`).
    A failed write (disk full, read-only file, lock timeout) raises
    `StoreError` naming the file and SQLite's own reason; nothing of the
    batch is kept.
    """
    rows = (SPANS.rows_json(batch.spans), TRACES.rows_json(batch.traces))
    scores = _score_rows(batch)
    # SQLite's JSON functions end a text value at a NUL character (3.40 does):
    # a batch holding one, anywhere, is written a row at a time instead.
    row_by_row = b"\\u0000" in rows[0] or b"\\u0000" in rows[1]
    try:
        if not scores and not row_by_row:  # the usual batch: one statement, its own transaction
            conn.execute(_INSERT_BATCH, rows)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if row_by_row:
                conn.executemany(SPANS.insert, map(SPANS.row, batch.spans))
                conn.executemany(TRACES.insert, map(TRACES.row, batch.traces))
            else:
                conn.execute(_INSERT_BATCH, rows)
            conn.executemany(_SCORE_UPSERT, scores)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"cannot write to the trace store at {_path_of(conn)}: {exc}") from exc


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


ScoresByTarget = dict[tuple[str, str | None], list[FeedbackScore]]


def load_scores(conn: sqlite3.Connection, trace_id: str | None = None) -> ScoresByTarget:
    """Scores by (trace id, span id; None for the trace's own), oldest first.

    Only `trace_id`'s when given. A store written before scores existed
    (schema 1, read without upgrading) has none.
    """
    if (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FEEDBACK.name,)
        ).fetchone()
        is None
    ):
        return {}
    rows = conn.execute(
        f"SELECT {FEEDBACK.select} FROM {FEEDBACK.name}"
        " WHERE :trace_id IS NULL OR trace_id = :trace_id ORDER BY created_ns",
        {"trace_id": trace_id},
    )
    scores: ScoresByTarget = {}
    for row in rows:
        record: FeedbackRecord = FEEDBACK.record_of(row)
        scores.setdefault((record.trace_id, record.span_id), []).append(record.score)
    return scores


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


# The `tracekit ls` filters; only those given are in the query, so that SQLite seeks
# an index on the traces' start time (alone, or after the project or name) instead of
# reading and sorting the whole table: the cost does not grow with the store.
_LS_FILTERS = {
    "project": "t.project_name = :project",
    "since": "t.start_ns >= :since",
    "name": "t.name = :name",
    "errors_only": "EXISTS (SELECT 1 FROM spans e"
    " WHERE e.trace_id = t.id AND e.error_info IS NOT NULL)",
}
_LS_COLUMNS = ", ".join("t." + column for column in TRACES.columns)
# Each chosen trace's totals, summed over its spans only (through `spans_by_trace`).
_LS_TOTALS = ", ".join(
    f"(SELECT {total} FROM spans s WHERE s.trace_id = t.id)"
    for total in (
        "COUNT(*)",
        "COUNT(s.error_info)",
        "SUM(json_extract(s.usage, '$.total_tokens'))",
        "SUM(s.total_cost)",
    )
)


def list_traces(
    conn: sqlite3.Connection,
    *,
    limit: int = 20,
    offset: int = 0,
    project: str | None = None,
    errors_only: bool = False,
    since_ns: int | None = None,
    name: str | None = None,
) -> list[TraceSummary]:
    """The most recent traces first, with span, error, token and cost totals.

    The traces are chosen first (newest `limit` after `offset`, filtered),
    then only their spans are summed: the cost does not grow with the store.
    `name` matches a trace's name exactly.
    """
    given = {"project": project, "since": since_ns, "name": name, "errors_only": errors_only}
    filters = [
        _LS_FILTERS[key] for key, value in given.items() if value is not None and value is not False
    ]
    query = (
        f"SELECT {_LS_COLUMNS}, {_LS_TOTALS} FROM traces t"
        + "".join(f" {'AND' if i else 'WHERE'} {clause}" for i, clause in enumerate(filters))
        + " ORDER BY t.start_ns DESC LIMIT :limit OFFSET :offset"
    )
    rows = conn.execute(query, {**given, "limit": limit, "offset": offset}).fetchall()
    width = len(TRACES.columns)
    return [TraceSummary(TRACES.record_of(row[:width]), *row[width:]) for row in rows]


def resolve_trace_id(conn: sqlite3.Connection, trace_id: str) -> str:
    """`trace_id` itself, the latest trace for "last", or a unique start or end of an id.

    The end (the random tail `tracekit ls` shows) is unique where a prefix is
    not: UUIDv7 ids of one run share their time prefix.
    """
    if trace_id == "last":
        row = conn.execute("SELECT id FROM traces ORDER BY start_ns DESC LIMIT 1").fetchone()
        if row is None:
            raise StoreError("the trace store holds no trace yet")
        return str(row[0])
    part = trace_id.strip().lower()
    rows = (
        conn.execute(
            """SELECT id FROM traces
           WHERE substr(id, 1, length(:part)) = :part OR substr(id, -length(:part)) = :part
           UNION SELECT DISTINCT trace_id FROM spans
           WHERE substr(trace_id, 1, length(:part)) = :part
              OR substr(trace_id, -length(:part)) = :part
           LIMIT 2""",
            {"part": part},
        ).fetchall()
        if part
        else []
    )
    if not rows:
        raise StoreError(f"no trace with id {trace_id!r}")
    if len(rows) > 1:
        raise StoreError(f"{trace_id!r} matches several traces; give more of the id")
    return str(rows[0][0])


def load_trace(conn: sqlite3.Connection, trace_id: str) -> TraceRecord | None:
    """The trace record, or None when its root never ended (its spans may still exist)."""
    row = conn.execute(f"SELECT {TRACES.select} FROM traces WHERE id = ?", (trace_id,)).fetchone()
    if row is None:
        return None
    trace: TraceRecord = TRACES.record_of(row)
    trace.feedback_scores = load_scores(conn, trace_id).get((trace_id, None), [])
    return trace


def load_spans(conn: sqlite3.Connection, trace_id: str) -> list[SpanRecord]:
    """The trace's spans in start order, each with its scores."""
    rows = conn.execute(
        f"SELECT {SPANS.select} FROM spans WHERE trace_id = ? ORDER BY start_ns",
        (trace_id,),
    ).fetchall()
    spans: list[SpanRecord] = [SPANS.record_of(row) for row in rows]
    scores = load_scores(conn, trace_id)
    for span in spans:
        span.feedback_scores = scores.get((trace_id, span.id), [])
    return spans


def iter_spans(conn: sqlite3.Connection, since: datetime | None = None) -> Iterator[SpanRecord]:
    """Every span, oldest first, with its scores; only those started at or after `since`."""
    scores = load_scores(conn)
    query = f"SELECT {SPANS.select} FROM spans"
    params: tuple[Any, ...] = ()
    if since is not None:
        query += " WHERE start_ns >= ?"
        params = (min(round(since.timestamp() * 1e9), 2**63 - 1),)  # SQLite ints are 64-bit
    with closing(conn.execute(query + " ORDER BY start_ns", params)) as cursor:
        for row in cursor:
            span: SpanRecord = SPANS.record_of(row)
            span.feedback_scores = scores.get((span.trace_id, span.id), [])
            yield span
