"""The embedded SQLite store: every field kept, several writers, private permissions."""

from __future__ import annotations

import enum
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit
from tracekit import _store
from tracekit._capture import Limits, Redactor, to_json_safe
from tracekit._records import Batch, span_record, trace_record
from tracekit.testing import Capture


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "private" / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    yield path
    tracekit.configure(exporter="none")


def _safe(value: object) -> object:
    return to_json_safe(value, Limits(), Redactor())


def test_every_field_round_trips(db: Path, exported_capture: Capture) -> None:
    """What a span and its trace hold is what the store gives back."""
    with (
        tracekit.context(project_name="proj", thread_id="th-1", tags=["ctx"]),
        tracekit.span("root", type="general", input={"q": [1, 2.5, "x", None]}) as root,
    ):
        tracekit.update_current_trace(metadata={"tenant": "acme"}, tags=["vip"])
        with tracekit.span("llm", type="llm", metadata={"temperature": 0.2}) as llm:
            llm.update(
                output={"text": "héllo ✓"},
                usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                model="gpt-4o-mini",
                provider="openai",
                total_cost=0.0123,
                tags=["llm-tag"],
            )
        with pytest.raises(KeyError), tracekit.span("failing", type="tool"):
            raise KeyError("k")
        root.update(output="done")
    assert tracekit.flush(10)
    conn = _store.connect(db, create=False)
    stored = {s.name: s for s in _store.load_spans(conn, root.trace_id)}
    for span in exported_capture.spans:
        assert stored[span.name] == span_record(span, _safe)
    assert _store.load_trace(conn, root.trace_id) == trace_record(root, _safe)
    assert stored["failing"].error_info is not None
    assert stored["failing"].error_info["exception_type"] == "KeyError"


def test_the_store_uses_wal_and_a_versioned_schema(db: Path) -> None:
    """The file is in WAL mode and stamped with the schema version."""
    with tracekit.span("s"):
        pass
    assert tracekit.flush(10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _store.SCHEMA_VERSION


def test_folder_is_0700_and_file_0600(db: Path) -> None:
    """The store may hold prompts: only its owner can read it."""
    with tracekit.span("s"):
        pass
    assert tracekit.flush(10)
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_an_empty_file_is_migrated(tmp_path: Path) -> None:
    """A database at user_version 0 gets the schema; opening again changes nothing."""
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    _store.connect(path, create=True).close()
    conn = _store.connect(path, create=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == _store.SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"spans", "traces"} <= tables


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer tracekit is not touched."""
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {_store.SCHEMA_VERSION + 1}")
    with pytest.raises(_store.StoreError, match="newer"):
        _store.connect(path, create=True)


WRITER = """
import sys, tracekit
tracekit.configure(exporter="sqlite", db_path=sys.argv[1], batch_size=50, flush_interval=0.01)

@tracekit.track
def leaf(i):
    return i

@tracekit.track
def request(n):
    for i in range(4):
        leaf(i)

for n in range(int(sys.argv[2])):
    request(n)
assert tracekit.flush(60), tracekit.stats()
"""


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    """Three processes writing the same store at once lose nothing."""
    path = tmp_path / "shared.db"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(path), "200"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 3 * 200
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 3 * 200 * 5
        orphans = conn.execute(
            "SELECT COUNT(*) FROM spans s WHERE s.parent_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM spans p WHERE p.id = s.parent_id)"
        ).fetchone()[0]
        assert orphans == 0


def test_an_unwritable_path_counts_failures_not_crashes(tmp_path: Path) -> None:
    """A store that cannot be created makes exports fail (counted); the program runs on."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    tracekit.configure(exporter="sqlite", db_path=blocker / "traces.db", flush_interval=0.01)
    try:
        with tracekit.span("s"):
            pass
        assert tracekit.flush(10) is False
        assert tracekit.stats()["failed"] == 1
    finally:
        tracekit.configure(exporter="none")


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_exports_its_own_spans(db: Path) -> None:
    """After fork, the child starts its own export thread; parent and child spans both land."""
    import os

    with tracekit.span("parent-before-fork"):
        pass
    assert tracekit.flush(10)
    pid = os.fork()
    if pid == 0:  # child
        try:
            with tracekit.span("child"):
                pass
            os._exit(0 if tracekit.flush(10) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with tracekit.span("parent-after-fork"):
        pass
    assert tracekit.flush(10)
    with sqlite3.connect(db) as conn:
        names = sorted(row[0] for row in conn.execute("SELECT name FROM spans"))
    assert names == ["child", "parent-after-fork", "parent-before-fork"]


@pytest.mark.parametrize("arrow", [True, False], ids=["sqlite-3.38+", "older-sqlite"])
def test_a_batch_is_stored_as_given_by_either_sqlite_read_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrow: bool
) -> None:
    """One statement writes the batch; JSON values of every kind come back equal.

    SQLite before 3.38 has no `->`: there, JSON columns travel pre-encoded.
    Strings that look like JSON, `null` text, bools, big ints and non-ASCII
    text must not change type on the way.
    """
    if arrow and sqlite3.sqlite_version_info < (3, 38, 0):
        pytest.skip("this SQLite has no -> operator")  # the other case still runs
    monkeypatch.setattr(_store, "_ARROW", arrow)
    values: list[object] = [
        "null",
        '{"not": "an object"}',
        "",
        True,
        False,
        0,
        2**70,
        -1.5e300,
        [None, [], {}],
        {"é✓\u0000": ['\n"\\', None, 1.0]},
        None,
    ]
    spans = []
    for i, value in enumerate(values):
        with tracekit.testing.capture() as capture, tracekit.span(f"s{i}", input=value) as span:
            span.update(output=value, metadata={"v": value}, tags=[f"t{i}"])
        spans.extend(capture.spans)
    records = [span_record(span, _safe) for span in spans]
    traces = [trace_record(span, _safe) for span in spans]
    conn = _store.connect(tmp_path / "t.db", create=True)
    _store.write_batch(conn, Batch(spans=records, traces=traces))
    for record, trace in zip(records, traces, strict=True):
        assert _store.load_spans(conn, record.trace_id) == [record]
        assert _store.load_trace(conn, record.trace_id) == trace
    none_span = next(r for r in records if r.name == f"s{len(values) - 1}")
    row = conn.execute("SELECT input, output FROM spans WHERE id = ?", (none_span.id,)).fetchone()
    assert row == (None, None)  # None is SQL NULL, not the text 'null'


def test_text_fields_keep_a_nul_character(tmp_path: Path) -> None:
    """SQLite's JSON functions end text at NUL: such a batch is written row by row, whole."""
    with tracekit.testing.capture() as capture:
        with (
            tracekit.context(project_name="p\x00q", thread_id="t\x00h"),
            tracekit.span("na\x00me", input="in\x00put") as span,
        ):
            span.update(model="m\x00del", provider="pro\x00vider")
        with tracekit.span("plain"):  # a batch-mate without NUL
            pass
    records = [span_record(span, _safe) for span in capture.spans]
    traces = [trace_record(span, _safe) for span in capture.spans]
    conn = _store.connect(tmp_path / "t.db", create=True)
    _store.write_batch(conn, Batch(spans=records, traces=traces))
    for record, trace in zip(records, traces, strict=True):
        assert _store.load_spans(conn, record.trace_id) == [record]
        assert _store.load_trace(conn, record.trace_id) == trace
    assert records[0].name == "na\x00me"


class _Tier(str, enum.Enum):  # noqa: UP042 (not StrEnum: str() of this is "_Tier.PROD")
    PROD = "prod"


class _Shouting(str):
    def __str__(self) -> str:
        return self.upper()


def test_a_str_subclass_given_as_a_name_is_stored_as_its_text(db: Path) -> None:
    """A str Enum member or a str with its own __str__, as name, project or tag: its text."""

    @tracekit.track(name=_Tier.PROD, project_name=_Tier.PROD, tags=[_Tier.PROD, _Shouting("t")])
    def tagged() -> None:
        pass

    tagged()
    assert tracekit.flush(10)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, project_name, tags FROM spans").fetchall()
    assert rows == [("prod", "prod", '["prod","t"]')]
