"""`tracekit.testing.capture()` and the `tracekit_capture` fixture."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import tracekit
from tests.opik_server import OpikServer
from tracekit.testing import Capture, capture


@tracekit.track
def work(label: str) -> str:
    return label


def test_capture_collects_spans_in_end_order() -> None:
    """Spans appear in the order they ended: children before their parents."""
    with capture() as captured, tracekit.span("outer"):
        work("inner")
    assert [s.name for s in captured.spans] == ["work", "outer"]


def test_capture_stops_collecting_when_the_block_ends() -> None:
    """Spans that end after the capture block are not collected."""
    with capture() as captured:
        work("inside")
    work("outside")
    assert [s.input["label"] for s in captured.spans] == ["inside"]


def test_capture_collects_from_other_threads() -> None:
    """Spans ended in any thread while capturing are collected."""
    with capture() as captured:
        thread = threading.Thread(target=work, args=("thread",))
        thread.start()
        thread.join()
    assert [s.input["label"] for s in captured.spans] == ["thread"]


def test_nested_captures_both_collect() -> None:
    """Two active captures each receive every span."""
    with capture() as outer:
        with capture() as inner:
            work("x")
        work("y")
    assert len(inner.spans) == 1
    assert len(outer.spans) == 2


def test_named_finds_one_span_or_explains(tracekit_capture: Capture) -> None:
    """named() returns the single span with that name, or fails showing the tree."""
    work("a")
    assert tracekit_capture.named("work").input == {"label": "a"}
    work("b")
    with pytest.raises(LookupError, match="found 2"):
        tracekit_capture.named("work")
    with pytest.raises(LookupError, match="found 0"):
        tracekit_capture.named("missing")


def test_clear_forgets_what_was_captured(tracekit_capture: Capture) -> None:
    """clear() empties the capture; later spans are still collected."""
    work("a")
    tracekit_capture.clear()
    work("b")
    assert [s.input["label"] for s in tracekit_capture.spans] == ["b"]


def test_traces_lists_one_record_per_finished_root(tracekit_capture: Capture) -> None:
    """.traces holds a record per root span, with the root's id-derived trace id."""
    work("one")
    with tracekit.span("root"):
        work("two")
    assert [t.name for t in tracekit_capture.traces] == ["work", "root"]
    assert [t.id for t in tracekit_capture.traces] == [
        s.trace_id for s in tracekit_capture.spans if s.is_root
    ]


def test_tree_renders_nesting(tracekit_capture: Capture) -> None:
    """tree() shows children indented under their parents."""
    with tracekit.span("root"):
        work("leaf")
    lines = tracekit_capture.tree().splitlines()
    assert lines[0].startswith("trace ")
    assert lines[1].startswith("root [general]")
    assert lines[2].startswith("└── work [general]")


def _stored_traces(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        return int(connection.execute("select count(*) from traces").fetchone()[0])


@pytest.mark.parametrize("export", [False, True])
def test_captured_spans_are_exported_only_when_asked(tmp_path: Path, export: bool) -> None:
    db = tmp_path / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=db)
    try:
        with capture(export=export) as captured:
            work("in a test")
            thread = threading.Thread(target=work, args=("in a thread",))
            thread.start()
            thread.join()
            tracekit.log_feedback(captured.spans[0].trace_id, "ok", 1)
        assert len(captured.spans) == 2
        work("after the capture")  # exported as usual
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    assert _stored_traces(db) == (3 if export else 1)


USER_TESTS = """
import tracekit

@tracekit.track
def handler(q):
    return q.upper()

def test_handler(tracekit_capture):
    assert handler("a") == "A"
    assert [s.name for s in tracekit_capture.spans] == ["handler"]
"""


def test_a_users_test_run_leaves_their_store_and_opik_alone(
    tmp_path: Path, opik_server: OpikServer
) -> None:
    """The `tracekit_capture` fixture in a user's own suite: nothing stored, nothing sent."""
    opik_server.reset()
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    env = {
        **os.environ,
        "TRACEKIT_DB": str(tmp_path / "app.db"),
        "OPIK_URL_OVERRIDE": opik_server.url,
        "TRACEKIT_EXPORTER": "auto",
    }
    env.pop("PYTEST_ADDOPTS", None)
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout
    assert _stored_traces(tmp_path / "app.db") == 0
    assert not opik_server.spans
    assert not opik_server.traces
