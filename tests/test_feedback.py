"""Feedback scores, end to end: given while a span runs or long after its trace ended.

On the wire they are checked next to what `@opik.track` sends for the same
calls (in-suite Opik server); locally they round-trip through SQLite, the
upgrade of an older store, `tracekit show` (one line per score), `show
--json` and `export`.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import opik
import pytest

import tracekit
from tests.opik_server import OpikServer
from tracekit import _store
from tracekit._records import FeedbackScore
from tracekit.testing import Capture

TRACEKIT = str(Path(sys.executable).parent / "tracekit")
SCORE_FIELDS = ("name", "value", "reason", "category_name", "source", "project_name")


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACEKIT, *args, "--db", str(db)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def server(opik_server: OpikServer) -> Iterator[OpikServer]:
    opik_server.reset()
    yield opik_server
    tracekit.configure(exporter="none")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    yield path
    tracekit.configure(exporter="none")


def _rated(update_span: Callable[..., None], update_trace: Callable[..., None]) -> Any:
    def answer(question: str) -> str:
        update_span(feedback_scores=[{"name": "relevance", "value": 0.75, "reason": "on topic"}])
        update_trace(
            feedback_scores=[
                {"name": "helpful", "value": 1, "category_name": "yes"},
                {"name": "tone", "value": 0.5},
            ]
        )
        return "42"

    return answer


def _scores(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: s.get(k) for k in SCORE_FIELDS} for s in items), key=lambda s: s["name"])


# -- given while the span runs ------------------------------------------------------------


def test_scores_set_while_running_reach_opik_as_opik_track_sends_them(server: OpikServer) -> None:
    """Span and trace scores arrive at the feedback-score endpoints, with the right ids."""
    opik_answer = opik.track(name="answer")(
        _rated(opik.opik_context.update_current_span, opik.opik_context.update_current_trace)
    )
    opik_answer("q")
    opik.flush_tracker()
    assert server.wait_for(lambda: len(server.span_scores) == 1 and len(server.trace_scores) == 2)
    opik_span_scores, opik_trace_scores = list(server.span_scores), list(server.trace_scores)

    server.reset()
    tracekit.configure(exporter="opik", flush_interval=0.05)
    answer = tracekit.track(name="answer")(
        _rated(tracekit.update_current_span, tracekit.update_current_trace)
    )
    assert answer("q") == "42"
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.span_scores) == 1 and len(server.trace_scores) == 2)
    (span,) = server.spans.values()
    (trace,) = server.traces.values()
    assert _scores(server.span_scores) == _scores(opik_span_scores)
    assert _scores(server.trace_scores) == _scores(opik_trace_scores)
    assert [s["id"] for s in server.span_scores] == [span["id"]]
    assert {s["id"] for s in server.trace_scores} == {trace["id"]}
    # Scores go after the span and trace they are about.
    paths = [path for _, path in server.requests]
    assert paths.index("api/v1/private/spans/feedback-scores") > paths.index(
        "api/v1/private/spans/batch"
    )


def test_a_score_given_again_under_its_name_replaces_the_first(
    tracekit_capture: Capture,
) -> None:
    with tracekit.span("s") as s:
        s.update(feedback_scores=[{"name": "a", "value": 1}, {"name": "b", "value": 2}])
        tracekit.update_current_span(feedback_scores=[{"name": "a", "value": 3}])
        tracekit.update_current_trace(feedback_scores=[{"name": "t", "value": 1}])
        tracekit.update_current_trace(feedback_scores=[{"name": "t", "value": 0}])
    assert s.feedback_scores == [FeedbackScore("b", 2.0), FeedbackScore("a", 3.0)]
    (trace,) = tracekit_capture.traces
    assert trace.feedback_scores == [FeedbackScore("t", 0.0)]


def test_scores_on_a_root_span_stay_the_spans(tracekit_capture: Capture) -> None:
    """As with tags and metadata: a root span's score is not its trace's."""
    with tracekit.span("root"):
        tracekit.update_current_span(feedback_scores=[{"name": "span-only", "value": 1}])
    (trace,) = tracekit_capture.traces
    assert trace.feedback_scores == []
    assert tracekit_capture.named("root").feedback_scores == [FeedbackScore("span-only", 1.0)]


# -- given later: log_feedback --------------------------------------------------------------


def test_log_feedback_after_the_trace_ended_reaches_opik(server: OpikServer) -> None:
    """A user's rating, given after the request: trace and span scores with the right ids.

    The trace was recorded in its own project: the late score is filed there too.
    """
    tracekit.configure(exporter="opik", flush_interval=0.05)

    @tracekit.track
    def retrieve(query: str) -> list[str]:
        return ["doc"]

    @tracekit.track
    def answer(question: str) -> str:
        retrieve(question)
        return "42"

    with tracekit.context(project_name="support-bot"):
        answer("q")
    assert tracekit.flush(10)
    (trace,) = server.traces.values()
    retrieve_span = next(s for s in server.spans.values() if s["name"] == "retrieve")

    tracekit.log_feedback(trace["id"], "thumbs", 0, reason="wrong answer")
    tracekit.log_feedback(trace["id"], "recall", 0.5, span_id=retrieve_span["id"])
    assert tracekit.flush(10)
    assert server.wait_for(lambda: server.trace_scores and server.span_scores)
    (trace_score,) = server.trace_scores
    (span_score,) = server.span_scores
    assert trace_score == {
        "id": trace["id"],
        "project_name": "support-bot",
        "name": "thumbs",
        "value": 0.0,
        "reason": "wrong answer",
        "source": "sdk",
    }
    assert span_score["id"] == retrieve_span["id"]
    assert (span_score["name"], span_score["value"]) == ("recall", 0.5)
    assert span_score["project_name"] == "support-bot"


def test_log_feedback_for_a_trace_of_another_process_uses_the_given_or_default_project(
    server: OpikServer,
) -> None:
    tracekit.configure(exporter="opik", project_name="main-app", flush_interval=0.05)
    elsewhere = "0192f3a4-0000-7000-8000-000000000001"
    tracekit.log_feedback(elsewhere, "a", 1)
    tracekit.log_feedback(elsewhere, "b", 1, project_name="other")
    assert tracekit.flush(10)
    assert server.wait_for(lambda: len(server.trace_scores) == 2)
    assert {s["name"]: s["project_name"] for s in server.trace_scores} == {
        "a": "main-app",
        "b": "other",
    }


def test_late_scores_are_captured_in_tests(tracekit_capture: Capture) -> None:
    with tracekit.span("s") as s:
        pass
    tracekit.log_feedback(s.trace_id, "thumbs", 1, category_name="up")
    (late,) = tracekit_capture.feedback
    assert (late.trace_id, late.span_id, late.score) == (
        s.trace_id,
        None,
        FeedbackScore("thumbs", 1.0, None, "up"),
    )


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda: tracekit.log_feedback("not-an-id", "n", 1), ValueError, "a UUID string"),
        (lambda: tracekit.log_feedback(None, "n", 1), TypeError, "expected an id string"),
        (
            lambda: tracekit.log_feedback("0192f3a4-0000-7000-8000-000000000001", "", 1),
            TypeError,
            "name='': expected a non-empty str",
        ),
        (
            lambda: tracekit.log_feedback("0192f3a4-0000-7000-8000-000000000001", "n", "1"),
            TypeError,
            "value='1': expected a number",
        ),
        (
            lambda: tracekit.log_feedback("0192f3a4-0000-7000-8000-000000000001", "n", True),
            TypeError,
            "value=True: expected a number",
        ),
        (
            lambda: tracekit.log_feedback(
                "0192f3a4-0000-7000-8000-000000000001", "n", float("nan")
            ),
            ValueError,
            "expected a finite number",
        ),
        (
            lambda: tracekit.log_feedback("0192f3a4-0000-7000-8000-000000000001", "n", 1, reason=3),
            TypeError,
            "reason=3",
        ),
        (
            lambda: tracekit.update_current_trace(feedback_scores={"name": "n", "value": 1}),
            TypeError,
            "expected a list of dicts",
        ),
        (
            lambda: tracekit.update_current_trace(
                feedback_scores=[{"name": "n", "value": 1, "score": 2}]
            ),
            TypeError,
            "unknown key.* score.*accepted: name, value, reason, category_name",
        ),
        (
            lambda: tracekit.update_current_trace(feedback_scores=[{"name": "n"}]),
            TypeError,
            "needs both name and value",
        ),
    ],
)
def test_bad_scores_are_refused_naming_the_value_and_what_is_accepted(
    call: Callable[[], None], error: type[Exception], fragment: str
) -> None:
    with tracekit.span("s"), pytest.raises(error, match=fragment):
        call()


# -- the local store and the CLI --------------------------------------------------------------


def _rated_trace() -> tracekit.Span:
    @tracekit.track
    def search(query: str) -> str:
        tracekit.update_current_span(
            feedback_scores=[{"name": "precision", "value": 0.25, "reason": "2 of 8 relevant"}]
        )
        return "doc"

    @tracekit.track
    def answer(question: str) -> str:
        search(question)
        tracekit.update_current_trace(feedback_scores=[{"name": "grounded", "value": 1}])
        return "42"

    with tracekit.testing.capture(export=True) as captured:
        answer("q")
    return captured.named("answer")


def test_scores_round_trip_through_sqlite_and_the_cli(db: Path) -> None:
    root = _rated_trace()
    tracekit.log_feedback(root.trace_id, "thumbs", 0, reason="too slow")
    tracekit.log_feedback(root.trace_id, "grounded", 0.5)  # replaces the one set while running
    assert tracekit.flush(10)

    conn = _store.connect(db, create=False)
    trace = _store.load_trace(conn, root.trace_id)
    assert trace is not None
    assert trace.feedback_scores == [
        FeedbackScore("thumbs", 0.0, "too slow"),
        FeedbackScore("grounded", 0.5),
    ]
    search = next(s for s in _store.load_spans(conn, root.trace_id) if s.name == "search")
    assert search.feedback_scores == [FeedbackScore("precision", 0.25, "2 of 8 relevant")]

    shown = _cli(db, "show", "last")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sum("score thumbs = 0: too slow" in line for line in lines) == 1
    assert sum("score grounded = 0.5" in line for line in lines) == 1
    precision = [line for line in lines if "score precision = 0.25: 2 of 8 relevant" in line]
    assert len(precision) == 1
    assert lines.index(precision[0]) == 1 + next(
        i for i, line in enumerate(lines) if " search " in line
    )

    document = json.loads(_cli(db, "show", "last", "--json").stdout)
    assert [s["name"] for s in document["trace"]["feedback_scores"]] == ["thumbs", "grounded"]
    spans = {s["name"]: s for s in document["spans"]}
    (precision,) = spans["search"]["feedback_scores"]
    assert precision.pop("given_time").startswith(str(datetime.now(UTC).year))
    assert precision == {
        "name": "precision",
        "value": 0.25,
        "reason": "2 of 8 relevant",
        "category_name": None,
    }

    exported = [json.loads(line) for line in _cli(db, "export").stdout.splitlines()]
    by_name = {line["name"]: line for line in exported}
    assert by_name["search"]["feedback_scores"][0]["name"] == "precision"
    assert [s["name"] for s in by_name["answer"]["trace_feedback_scores"]] == [
        "thumbs",
        "grounded",
    ]
    assert "trace_feedback_scores" not in by_name["search"]


def test_a_store_from_before_scores_is_upgraded_and_keeps_its_traces(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in _store.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO traces (id, name, start_ns, end_ns, tags) VALUES ('t1', 'old', 1, 2, '[]')"
        )
        conn.execute(
            "INSERT INTO spans (id, trace_id, name, type, start_ns, end_ns, tags)"
            " VALUES ('s1', 't1', 'old', 'general', 1, 2, '[]')"
        )
    conn.close()
    # Read as it is (the CLI never upgrades): no scores, no error.
    shown = _cli(path, "show", "t1")
    assert shown.returncode == 0, shown.stderr
    assert "old" in shown.stdout

    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    try:
        tracekit.log_feedback("0192f3a4-0000-7000-8000-000000000001", "n", 1)
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    conn = _store.connect(path, create=False)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == _store.SCHEMA_VERSION
    trace = _store.load_trace(conn, "t1")
    assert trace is not None
    assert trace.name == "old"
    assert _store.load_scores(conn) == {
        ("0192f3a4-0000-7000-8000-000000000001", None): [FeedbackScore("n", 1.0)]
    }


def test_the_migrated_schema_has_a_column_for_every_record_field(tmp_path: Path) -> None:
    """Store columns derive from the records: a new field without a migration fails here."""
    conn = _store.connect(tmp_path / "s.db", create=True)
    for table in (_store.SPANS, _store.TRACES, _store.FEEDBACK):
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
        assert columns == set(table.columns), table.name


def test_secrets_in_a_reason_never_reach_the_store(db: Path) -> None:
    tracekit.configure(
        exporter="sqlite", db_path=db, flush_interval=0.01, secrets=["hunter2-very-secret"]
    )
    with tracekit.span("s") as s:
        tracekit.update_current_span(
            feedback_scores=[{"name": "n", "value": 1, "reason": "pw hunter2-very-secret"}]
        )
    tracekit.log_feedback(s.trace_id, "late", 1, reason="key sk-abcdefghijklmnopqrstuvwx0123")
    assert tracekit.flush(10)
    raw = b"".join(p.read_bytes() for p in db.parent.glob("traces.db*"))
    assert b"hunter2-very-secret" not in raw
    assert b"sk-abcdefghijklmnopqrstuvwx0123" not in raw


# -- found by attacking it ---------------------------------------------------------------


def test_a_span_over_its_byte_budget_keeps_its_project_names_and_score_names(db: Path) -> None:
    """The budget cuts bulky values; what files a record (project, names, tags) stays whole."""
    tracekit.configure(exporter="sqlite", db_path=db, flush_interval=0.01, max_span_bytes=2048)

    @tracekit.track(project_name="proj", tags=["t1"])
    def big_root(docs: list[str]) -> str:
        tracekit.update_current_trace(
            thread_id="th-1", feedback_scores=[{"name": "grounded", "value": 1}]
        )
        tracekit.update_current_span(feedback_scores=[{"name": "relevance", "value": 0.5}])
        return "ok"

    with tracekit.testing.capture(export=True) as captured:
        big_root(["y" * 900] * 20)
    root = captured.named("big_root")
    assert tracekit.flush(10)
    conn = _store.connect(db, create=False)
    trace = _store.load_trace(conn, root.trace_id)
    assert trace is not None
    (span,) = _store.load_spans(conn, root.trace_id)
    assert "budget" in json.dumps(span.input)  # the bulky value was cut
    for record in (trace, span):
        assert (record.name, record.project_name, record.tags) == ("big_root", "proj", ["t1"])
    assert trace.thread_id == "th-1"
    assert [s.name for s in trace.feedback_scores] == ["grounded"]
    assert [s.name for s in span.feedback_scores] == ["relevance"]


def test_a_score_given_later_wins_even_when_the_earlier_one_is_written_after_it(
    db: Path,
) -> None:
    """A trace's own scores are written when it ends; a late score given after them stays."""
    with tracekit.span("root") as root:
        tracekit.update_current_trace(feedback_scores=[{"name": "x", "value": 1}])
        tracekit.log_feedback(root.trace_id, "x", 2)
        assert tracekit.flush(10)  # the late score is stored before the trace ends
    assert tracekit.flush(10)
    conn = _store.connect(db, create=False)
    trace = _store.load_trace(conn, root.trace_id)
    assert trace is not None
    assert [(s.name, s.value) for s in trace.feedback_scores] == [("x", 2.0)]


@pytest.mark.parametrize("form", ["{%s}", "urn:uuid:%s", "upper"])
def test_log_feedback_stores_any_uuid_form_under_the_recorded_id(db: Path, form: str) -> None:
    with tracekit.span("s") as s:
        pass
    given = s.trace_id.upper() if form == "upper" else form % s.trace_id
    tracekit.log_feedback(given, "n", 1)
    assert tracekit.flush(10)
    trace = _store.load_trace(_store.connect(db, create=False), s.trace_id)
    assert trace is not None
    assert [score.name for score in trace.feedback_scores] == ["n"]


def test_an_opik_style_id_key_is_accepted_and_the_score_goes_to_the_current_span(
    tracekit_capture: Capture,
) -> None:
    with tracekit.span("s") as s:
        tracekit.update_current_span(feedback_scores=[{"id": "elsewhere", "name": "n", "value": 1}])
    assert s.feedback_scores == [FeedbackScore("n", 1.0)]


def test_bad_span_scores_raise_with_no_active_span_too() -> None:
    """As update_current_trace does: a bad score is a bug in the caller, span or not."""
    with pytest.raises(ValueError, match="expected a finite number"):
        tracekit.update_current_span(feedback_scores=[{"name": "n", "value": float("nan")}])


def test_a_late_score_is_counted_in_stats_like_a_span(db: Path) -> None:
    with tracekit.span("s") as s:
        pass
    tracekit.log_feedback(s.trace_id, "n", 1)
    assert tracekit.flush(10)
    stats = tracekit.stats()
    assert (stats["produced"], stats["exported"]) == (2, 2)
