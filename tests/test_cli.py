"""The `tracekit` command over a prepared SQLite store, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit

TRACEKIT = str(Path(sys.executable).parent / "tracekit")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACEKIT, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three traces: a plain one, one with an LLM call, one that failed (newest)."""
    path = tmp_path_factory.mktemp("cli") / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    try:

        @tracekit.track
        def plain() -> int:
            return 1

        @tracekit.track
        def chat(question: str) -> str:
            with tracekit.span("completion", type="llm") as llm:
                llm.update(
                    model="gpt-4o-mini",
                    usage={"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
                    total_cost=0.0021,
                )
            return "answer"

        @tracekit.track
        def broken() -> None:
            raise RuntimeError("disk on fire")

        plain()
        with tracekit.context(project_name="bots"):
            chat("hi")
        with pytest.raises(RuntimeError):
            broken()
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    return path


def test_ls_lists_recent_traces_newest_first(store: Path) -> None:
    """ls shows each trace's id, root name, span count, errors, tokens and cost."""
    result = _cli("ls", "--db", str(store))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[2].strip() for row in rows] == ["broken", "chat", "plain"]
    chat_row = [cell.strip() for cell in rows[1].split("│")]
    assert chat_row[5:9] == ["2", "0", "12", "0.002100"]
    broken_row = [cell.strip() for cell in rows[0].split("│")]
    assert broken_row[6] == "1"


def test_ls_filters_by_limit_project_and_errors(store: Path) -> None:
    """--limit, --project and --errors narrow the list."""
    names = {
        flags: [
            line.split("│")[2].strip()
            for line in _cli("ls", "--db", str(store), *flags).stdout.splitlines()
            if line.startswith("│")
        ]
        for flags in [("--limit", "1"), ("--project", "bots"), ("--errors",)]
    }
    assert names == {
        ("--limit", "1"): ["broken"],
        ("--project", "bots"): ["chat"],
        ("--errors",): ["broken"],
    }


def test_show_last_prints_the_newest_tree_with_the_error(store: Path) -> None:
    """show last prints the newest trace's spans with type, duration and the error."""
    result = _cli("show", "last", "--db", str(store))
    assert result.returncode == 0, result.stderr
    assert "broken [general]" in result.stdout
    assert "RuntimeError: disk on fire" in result.stdout


def test_show_by_id_prefix_shows_model_and_tokens(store: Path) -> None:
    """A unique id prefix is enough; LLM spans show their model and tokens, nested."""
    listing = _cli("ls", "--db", str(store), "--project", "bots").stdout
    trace_id = next(line for line in listing.splitlines() if line.startswith("│")).split("│")[1]
    result = _cli("show", trace_id.strip()[:30], "--db", str(store))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "project=bots" in lines[0]
    (llm_line,) = [line for line in lines if "completion" in line]
    (chat_line,) = [line for line in lines if " chat [" in line]
    assert "[llm]" in llm_line
    assert "gpt-4o-mini 12 tokens" in llm_line
    assert llm_line.index("completion") > chat_line.index("chat")  # drawn as its child


def test_show_json_prints_the_trace_and_its_spans(store: Path) -> None:
    """show --json prints a document with the trace record and every span."""
    result = _cli("show", "last", "--json", "--db", str(store))
    document = json.loads(result.stdout)
    assert document["trace"]["name"] == "broken"
    assert document["trace"]["error_info"]["exception_type"] == "RuntimeError"
    assert [s["name"] for s in document["spans"]] == ["broken"]
    assert document["spans"][0]["trace_id"] == document["trace"]["id"]


def test_export_writes_one_json_span_per_line(store: Path) -> None:
    """export --format jsonl prints every span as one JSON object per line."""
    result = _cli("export", "--format", "jsonl", "--db", str(store))
    spans = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(s["name"] for s in spans) == ["broken", "chat", "completion", "plain"]


def test_export_since_filters_by_start_time(store: Path) -> None:
    """--since takes a relative duration or an ISO time."""
    assert len(_cli("export", "--since", "1h", "--db", str(store)).stdout.splitlines()) == 4
    future = _cli("export", "--since", "2999-01-01T00:00:00", "--db", str(store))
    assert future.returncode == 0
    assert future.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ls", "--db", "{missing}"), "tracekit: no trace store at"),
        (("show", "last", "--db", "{corrupt}"), "tracekit: cannot read"),
        (("ls", "--db", "{foreign}"), "is not a tracekit trace store"),
        (("show", "ffffffff", "--db", "{store}"), "tracekit: no trace with id 'ffffffff'"),
        (("show", "last", "--db", "{empty}"), "holds no trace yet"),
        (("export", "--since", "soon", "--db", "{store}"), "--since 'soon': expected"),
    ],
)
def test_problems_print_one_line_and_exit_1(
    store: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Missing, corrupt or foreign files, unknown ids and bad options: one line, status 1."""
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    foreign = tmp_path / "foreign.db"
    import sqlite3

    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE other (x)")
    from tracekit import _store

    empty = tmp_path / "empty.db"
    _store.connect(empty, create=True).close()
    paths = {
        "missing": tmp_path / "nope.db",
        "corrupt": corrupt,
        "foreign": foreign,
        "store": store,
        "empty": empty,
    }
    result = _cli(*(arg.format(**paths) for arg in args))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
