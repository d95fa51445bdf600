"""The background batcher: never blocks, never loses silently, flushes on demand."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit
from tests.exporters_for_tests import STALLED_EXPORTER, RecordingExporter
from tracekit._records import Batch


@pytest.fixture
def exporter() -> Iterator[RecordingExporter]:
    recording = RecordingExporter()
    tracekit.configure(exporter=recording, flush_interval=0.01, batch_size=1)
    yield recording
    recording.release()
    tracekit.configure(exporter="none")


@tracekit.track
def work(n: int) -> int:
    return n * 2


def test_spans_reach_the_exporter_on_flush(exporter: RecordingExporter) -> None:
    """flush() returns True once every queued span was exported."""
    for i in range(5):
        work(i)
    assert tracekit.flush(10) is True
    assert exporter.span_names == ["work"] * 5
    assert tracekit.stats() == {
        "produced": 5,
        "queued": 0,
        "in_flight": 0,
        "exported": 5,
        "dropped": 0,
        "failed": 0,
    }


def test_flush_with_nothing_queued_is_true() -> None:
    """flush() with no spans at all returns True at once."""
    tracekit.configure(exporter=RecordingExporter())
    try:
        assert tracekit.flush(1) is True
    finally:
        tracekit.configure(exporter="none")


def test_conversion_runs_on_the_export_thread(exporter: RecordingExporter) -> None:
    """Captured values are made JSON-safe on tracekit's thread, not in the traced call."""
    seen_on: list[str] = []

    class Probe:
        def __repr__(self) -> str:
            seen_on.append(threading.current_thread().name)
            return "probe"

    @tracekit.track
    def takes(value: object) -> None:
        return None

    takes(Probe())
    assert seen_on == []
    assert tracekit.flush(10)
    assert seen_on in (["tracekit-export"], ["tracekit-deliver"])
    assert exporter.batches[0].spans[0].input == {"value": "probe"}


def test_a_full_queue_drops_and_counts_without_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the exporter stuck and the queue full, calls go on; drops are counted, logged once."""
    stuck = RecordingExporter()
    stuck.hold()
    tracekit.configure(exporter=stuck, max_queue=5, batch_size=1, flush_interval=0.01)
    try:
        work(0)
        assert stuck.entered.wait(10)  # the export thread now holds that span
        results = [work(i) for i in range(1, 21)]
        assert results == [i * 2 for i in range(1, 21)]
        counts = tracekit.stats()
        # One span is being sent; at most 5 wait for conversion and 5 for delivery.
        assert counts["produced"] == 21
        assert counts["in_flight"] >= 1
        assert counts["queued"] + counts["in_flight"] <= 11
        assert counts["dropped"] == 21 - counts["in_flight"] - counts["queued"] >= 10
        drops = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(drops) == 1
        assert "max_queue=5" in drops[0].getMessage()
        stuck.release()
        assert tracekit.flush(10) is False  # some spans produced before it were lost
        assert tracekit.stats()["exported"] == 21 - counts["dropped"]
    finally:
        stuck.release()
        tracekit.configure(exporter="none")


def test_a_failing_backend_is_counted_and_flush_reports_it(
    exporter: RecordingExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Batches the exporter keeps refusing are counted as failed; results are unchanged."""
    exporter.failing = True
    assert [work(i) for i in range(3)] == [0, 2, 4]
    assert tracekit.flush(30) is False
    assert tracekit.stats()["failed"] == 3
    assert len([r for r in caplog.records if "could not export" in r.getMessage()]) == 1


def test_export_recovers_after_the_backend_comes_back(
    exporter: RecordingExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """After failures, spans flow again once the backend accepts; a new burst logs again."""
    exporter.failing = True
    work(1)
    assert tracekit.flush(30) is False
    exporter.failing = False
    work(2)
    assert tracekit.flush(30) is False  # work(1)'s span is still lost
    assert tracekit.stats()["exported"] == 1
    exporter.failing = True
    work(3)
    assert tracekit.flush(30) is False
    counts = tracekit.stats()
    assert (counts["exported"], counts["failed"]) == (1, 2)
    assert len([r for r in caplog.records if "could not export" in r.getMessage()]) == 2


def test_flush_is_true_only_when_nothing_produced_before_it_was_lost(
    exporter: RecordingExporter,
) -> None:
    """flush() speaks of every span produced so far: after one loss it says False."""
    work(1)
    assert tracekit.flush(30) is True
    exporter.failing = True
    work(2)
    assert tracekit.flush(30) is False
    exporter.failing = False
    work(3)
    assert tracekit.flush(30) is False
    assert tracekit.stats()["exported"] == 2
    tracekit.configure(exporter=exporter, flush_interval=0.01)  # a new account
    work(4)
    assert tracekit.flush(30) is True


def test_an_exporter_raising_a_base_exception_does_not_stop_delivery() -> None:
    """SystemExit from an exporter is counted as a failure; later batches still go out."""

    class ExitsOnce(RecordingExporter):
        def export(self, batch: Batch) -> None:
            if not self.batches and not self.failing:
                self.failing = True
                raise SystemExit("exporter quit")
            self.batches.append(batch)

    exporter = ExitsOnce()
    tracekit.configure(exporter=exporter, flush_interval=0.01, batch_size=1)
    try:
        work(1)
        assert tracekit.flush(10) is True  # the retry went through
        work(2)
        assert tracekit.flush(10) is True
        assert exporter.span_names == ["work", "work"]
    finally:
        tracekit.configure(exporter="none")


def test_error_text_obeys_the_string_limit(exporter: RecordingExporter) -> None:
    """An exception's message and traceback are cut to max_string_length like any value."""
    tracekit.configure(exporter=exporter, flush_interval=0.01, max_string_length=100)

    @tracekit.track
    def fails() -> None:
        raise ValueError("m" * 1_000_000)

    with pytest.raises(ValueError, match=r"^m+$"):
        fails()
    assert tracekit.flush(10)
    (record,) = exporter.batches[0].spans
    assert record.error_info is not None
    assert len(record.error_info["message"]) < 200
    assert len(record.error_info["traceback"]) < 200
    assert exporter.batches[0].traces[0].error_info == record.error_info


def test_configure_replaces_and_flushes_the_previous_exporter() -> None:
    """Spans queued before configure() reach the old exporter, which is then shut down."""
    first, second = RecordingExporter(), RecordingExporter()
    tracekit.configure(exporter=first, flush_interval=60)
    try:
        work(1)
        tracekit.configure(exporter=second, flush_interval=0.01)
        assert first.span_names == ["work"]
        assert first.shut_down
        work(2)
        assert tracekit.flush(10)
        assert second.span_names == ["work"]
    finally:
        tracekit.configure(exporter="none")


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        (
            {"exporter": "kafka"},
            ValueError,
            r"'kafka'.*'auto', 'opik', 'sqlite', 'console', 'none'",
        ),
        ({"exporter": 3}, ValueError, r"unknown exporter 3"),
        ({"max_queue": 0}, ValueError, r"max_queue=0.*an int from 1 to 10,000,000"),
        ({"max_queue": "10"}, TypeError, r"max_queue='10'"),
        ({"flush_interval": -1}, ValueError, r"flush_interval=-1.*a number from"),
        ({"flush_interval": float("inf")}, ValueError, r"flush_interval=inf"),
        ({"flush_interval": float("nan")}, ValueError, r"flush_interval=nan"),
        ({"exit_timeout": float("inf")}, ValueError, r"exit_timeout=inf"),
        ({"exit_timeout": 0}, ValueError, r"exit_timeout=0"),
        ({"request_timeout": float("nan")}, ValueError, r"request_timeout=nan"),
        ({"batch_size": 10**12}, ValueError, r"batch_size=1000000000000.*from 1 to 100,000"),
        ({"max_buffer_bytes": 10}, ValueError, r"max_buffer_bytes=10.*from 65,536"),
        (
            {"max_queue": 100, "batch_size": 500},
            ValueError,
            r"batch_size=500, max_queue=100.*must not exceed",
        ),
        ({"handle_sigterm": "no"}, TypeError, r"handle_sigterm='no'.*True or False"),
        ({"max_depth": True}, TypeError, r"max_depth=True"),
        ({"project_name": 5}, TypeError, r"project_name=5"),
        ({"db_path": 5}, TypeError, r"db_path=5"),
        ({"redact": "api_key"}, TypeError, r"redact='api_key'"),
    ],
)
def test_bad_configuration_raises_naming_the_value(
    kwargs: dict[str, object], error: type[Exception], fragment: str
) -> None:
    """configure() rejects unknown exporters and bad option types, saying what is accepted."""
    with pytest.raises(error, match=fragment):
        tracekit.configure(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timeout", "error"),
    [("1", TypeError), (None, TypeError), (-1, ValueError), (float("inf"), ValueError)],
)
def test_flush_rejects_a_timeout_that_is_not_seconds(
    timeout: object, error: type[Exception]
) -> None:
    """flush() names a bad timeout instead of failing inside."""
    with pytest.raises(error, match=r"flush\(timeout=.*\): expected a number of seconds"):
        tracekit.flush(timeout)  # type: ignore[arg-type]


def _run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
        cwd=cwd,
    )


def test_spans_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    """A program that never calls flush() still has its spans written when it exits."""
    db = tmp_path / "exit.db"
    result = _run_python(
        """
        import tracekit
        tracekit.configure(exporter="sqlite", flush_interval=60)

        @tracekit.track
        def job(i):
            return i

        for i in range(50):
            job(i)
        """,
        {"TRACEKIT_DB": str(db)},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 50


def test_exit_with_a_stuck_backend_waits_a_bounded_time_and_reports(tmp_path: Path) -> None:
    """At exit a backend that never answers delays the process by exit_timeout at most."""
    result = _run_python(
        STALLED_EXPORTER
        + textwrap.dedent(
            """
            import tracekit
            tracekit.configure(exporter=Stalled(), exit_timeout=0.5, flush_interval=0.01)
            with tracekit.span("a"):
                pass
            with tracekit.span("b"):
                pass
            print("done")
            """
        ),
        {},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert "not delivered" in result.stderr


@pytest.mark.parametrize("batch_size", [1, 500])
def test_a_value_whose_repr_hangs_costs_one_span_not_the_export(
    exporter: RecordingExporter, caplog: pytest.LogCaptureFixture, batch_size: int
) -> None:
    """One span of 150 holds a value whose __repr__ hangs: it fails alone, the rest flow on."""
    tracekit.configure(exporter=exporter, flush_interval=0.01, batch_size=batch_size)
    release = threading.Event()

    class Hangs:
        def __repr__(self) -> str:
            release.wait(60)
            return "finally"

    @tracekit.track
    def takes(value: object) -> None:
        return None

    try:
        for i in range(150):
            takes(Hangs() if i == 70 else i)
        assert tracekit.flush(30) is False
        counts = tracekit.stats()
        assert (counts["exported"], counts["failed"], counts["produced"]) == (149, 1, 150)
        takes("later")
        assert tracekit.flush(30) is False  # the lost span still counts
        assert tracekit.stats()["exported"] == 150
        inputs = [s.input["value"] for b in exporter.batches for s in b.spans]
        assert inputs == [*range(70), *range(71, 150), "later"]
        assert any("took over 2 s" in r.getMessage() for r in caplog.records)
    finally:
        release.set()


def test_a_record_the_backend_cannot_encode_fails_alone() -> None:
    """A batch refused for its content is resent span by span: only the bad span is lost."""

    class RefusesOne(RecordingExporter):
        def export(self, batch: Batch) -> None:
            if any(s.input == {"value": "poison"} for s in batch.spans):
                raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
            self.batches.append(batch)

    @tracekit.track
    def takes(value: object) -> None:
        return None

    exporter = RefusesOne()
    tracekit.configure(exporter=exporter, flush_interval=60, batch_size=500)
    try:
        for i in range(499):
            takes("poison" if i == 250 else i)
        assert tracekit.flush(30) is False
        counts = tracekit.stats()
        assert (counts["exported"], counts["failed"]) == (498, 1)
        assert len(exporter.span_names) == 498
    finally:
        tracekit.configure(exporter="none")
