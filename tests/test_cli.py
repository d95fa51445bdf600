"""The `tracekit` command over a prepared SQLite store, run as a user runs it."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
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


def _ls_json(store: Path, *flags: str) -> list[dict[str, object]]:
    result = _cli("ls", "--db", str(store), "--json", *flags)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_ls_lists_recent_traces_newest_first(store: Path) -> None:
    """ls shows each trace's id, root name, span count, errors, tokens and cost."""
    traces = _ls_json(store)
    assert [t["name"] for t in traces] == ["broken", "chat", "plain"]
    chat = traces[1]
    assert (chat["span_count"], chat["errors"], chat["total_tokens"]) == (2, 0, 12)
    assert chat["total_cost"] == pytest.approx(0.0021)
    assert traces[0]["errors"] == 1
    assert all(len(str(t["id"])) == 36 for t in traces)  # whole in JSON
    text = _cli("ls", "--db", str(store)).stdout
    for trace in traces:
        assert f"{str(trace['id'])[-12:]}  {trace['name']}" in text
    assert "0.002100" in text


def test_ls_filters_and_pages(store: Path) -> None:
    """--limit, --offset, --project, --name, --since and --errors narrow the list."""
    names = {
        flags: [t["name"] for t in _ls_json(store, *flags)]
        for flags in [
            ("--limit", "1"),
            ("--limit", "1", "--offset", "1"),
            ("--project", "bots"),
            ("--name", "plain"),
            ("--since", "1h"),
            ("--since", "2999-01-01T00:00:00"),
            ("--errors",),
        ]
    }
    assert names == {
        ("--limit", "1"): ["broken"],
        ("--limit", "1", "--offset", "1"): ["chat"],
        ("--project", "bots"): ["chat"],
        ("--name", "plain"): ["plain"],
        ("--since", "1h"): ["broken", "chat", "plain"],
        ("--since", "2999-01-01T00:00:00"): [],
        ("--errors",): ["broken"],
    }


def test_show_last_prints_the_newest_tree_with_the_error(store: Path) -> None:
    """show last prints the newest trace's spans with type, duration and the error."""
    result = _cli("show", "last", "--db", str(store))
    assert result.returncode == 0, result.stderr
    assert "broken [general]" in result.stdout
    assert "RuntimeError: disk on fire" in result.stdout


@pytest.mark.parametrize("part", ["start", "end"])
def test_show_by_the_start_or_end_of_an_id_shows_model_and_tokens(store: Path, part: str) -> None:
    """A unique start of an id, or its end as `ls` shows it, is enough; LLM spans show
    their model and tokens, nested."""
    (chat,) = _ls_json(store, "--project", "bots")
    trace_id = str(chat["id"])
    given = trace_id[:30] if part == "start" else trace_id[-12:]
    result = _cli("show", given, "--db", str(store))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "project=bots" in lines[1]
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
    ],
)
def test_problems_print_one_line_and_exit_1(
    store: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Missing, corrupt or foreign files, unknown ids and bad options: one line, status 1."""
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    foreign = tmp_path / "foreign.db"
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


def _cli_at(columns: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [TRACEKIT, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.mark.parametrize(
    ("columns", "header"),
    [
        (160, ["id", "name", "started", "took", "spans", "err", "tokens", "cost", "$"]),
        (80, ["id", "name", "started", "took", "spans", "err", "tokens", "cost", "$"]),
        (50, ["id", "name", "took", "spans"]),
    ],
)
def test_ls_fits_the_width_by_dropping_columns_not_squeezing_them(
    store: Path, columns: int, header: list[str]
) -> None:
    """Piped, ls takes $COLUMNS; whatever the width, every shown column is whole."""
    lines = _cli_at(columns, "ls", "--db", str(store)).stdout.splitlines()
    assert lines[0].startswith("traces 1-3, newest first")
    assert lines[1].split() == header
    assert max(len(line.rstrip()) for line in lines) <= columns
    for trace, line in zip(_ls_json(store), lines[2:], strict=True):
        short = str(trace["id"])[-12:]
        assert line.startswith(f"{short}  {trace['name']}")
        shown = _cli_at(columns, "show", short, "--db", str(store))
        assert shown.returncode == 0
        assert shown.stdout.startswith(f"trace {trace['id']}")


def test_usage_errors_are_one_line_and_status_2(store: Path) -> None:
    for args in ([], ["ls", "--limit", "0"], ["ls", "--limit", "x"], ["show"], ["nope"]):
        result = _cli(*args)
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("tracekit")


def test_version_and_help_describe_every_command() -> None:
    assert _cli("--version").stdout.startswith("tracekit ")
    assert _cli("--version").stdout.strip() == f"tracekit {importlib.metadata.version('tracekit')}"
    from tracekit.cli import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(commands.choices) == ["export", "ls", "show"]
    for name, command in commands.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, (name, action.dest)


def test_an_empty_or_missing_store_says_where_it_looked(tmp_path: Path) -> None:
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "empty.db")
    try:
        with tracekit.testing.capture(export=True):
            pass
        with tracekit.span("make the file"):
            pass
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    with sqlite3.connect(tmp_path / "empty.db") as connection:
        connection.execute("delete from spans")
        connection.execute("delete from traces")
    empty = _cli("ls", "--db", str(tmp_path / "empty.db"))
    assert empty.returncode == 0
    assert empty.stdout.strip() == f"no traces yet in {tmp_path / 'empty.db'}"
    missing = subprocess.run(
        [TRACEKIT, "ls"], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert missing.returncode == 1
    assert str(tmp_path / ".tracekit" / "traces.db") in missing.stderr
    assert "relative to the current directory" in missing.stderr


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trace with a failure, a generator dropped early, an interrupted span and a stream
    given up (as tracekit records them)."""
    path = tmp_path_factory.mktemp("marked") / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    try:

        @tracekit.track
        def numbers() -> Iterator[int]:
            yield from range(10)

        @tracekit.track
        def fetch(url: str) -> str:
            raise ValueError(f"cannot fetch {url}\nsecond line of the message")

        @tracekit.track
        def request(question: str) -> str:
            with tracekit.span("inner step"):
                pass
            next(iter(numbers()))
            with contextlib.suppress(ValueError):
                fetch("http://example.test/a")
            with tracekit.span("llm call", type="llm") as llm:
                llm.update(metadata={"stream_completed": False})
            with contextlib.suppress(KeyboardInterrupt), tracekit.span("interrupted"):
                raise KeyboardInterrupt
            return "an answer"

        request("why?")
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    return path


def _show(store: Path, *flags: str, columns: int = 80) -> list[str]:
    result = _cli_at(columns, "show", "last", "--db", str(store), *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _line(lines: list[str], name: str) -> str:
    (found,) = [line for line in lines if f" {name} [" in line]
    return found


@pytest.mark.parametrize("columns", [80, 160])
def test_show_aligns_bars_marks_what_went_wrong_and_lists_errors_below(
    marked: Path, columns: int
) -> None:
    lines = _show(marked, columns=columns)
    assert max(len(line) for line in lines) <= columns
    request, inner = _line(lines, "request"), _line(lines, "inner step")
    # One timeline column before the tree: a child that starts with its parent starts in the
    # same cell (give or take the cell its few microseconds' lag may round into), not 4
    # columns further per level as when bars followed the tree's guides.
    assert request.index("█") == 0
    assert inner.index("█") <= 1
    assert request.index("└── request") == inner.index("├── inner step") - 4
    assert "✗ ValueError" in _line(lines, "fetch")
    assert "second line" not in _line(lines, "fetch")  # one line in the tree
    assert "(not completed)" in _line(lines, "numbers")
    assert "(stream not completed)" in _line(lines, "llm call")
    assert "⚠ KeyboardInterrupt" in _line(lines, "interrupted")
    assert "question=why? → an answer" in request
    errors = lines.index("errors:")
    assert errors > lines.index(_line(lines, "interrupted"))
    assert "fetch: ValueError: cannot fetch http://example.test/a⏎second line" in " ".join(
        lines[errors:]
    )


def test_show_errors_keeps_the_failing_path_and_span_a_subtree(marked: Path) -> None:
    def names(lines: list[str]) -> list[str]:
        return [re.sub(r"^[█ ]*[│├└─ ]*", "", line).split(" [")[0] for line in lines[2:]]

    assert names(_show(marked, "--errors"))[:2] == ["request", "fetch"]
    assert "inner step" not in names(_show(marked, "--errors"))
    assert names(_show(marked, "--span", "inner step")) == ["inner step"]
    assert "(no span matches)" in _show(marked, "--span", "nope")


def test_show_full_prints_whole_values(marked: Path) -> None:
    lines = _show(marked, "--full")
    assert any(line.strip() == 'input: {"question": "why?"}' for line in lines)
    assert any(line.strip() == "output: an answer" for line in lines)


@pytest.fixture(scope="module")
def long_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("long") / "traces.db"
    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    try:
        for name in (
            "a_really_long_descriptive_span_name_for_the_support_pipeline_v2",
            "短い名前" * 8,
        ):
            with tracekit.span(name):
                pass
        assert tracekit.flush(10)
    finally:
        tracekit.configure(exporter="none")
    return path


@pytest.mark.parametrize("columns", [80, 60, 40, 30])
def test_a_long_name_gives_way_and_ids_stay_whole(long_names: Path, columns: int) -> None:
    lines = _cli_at(columns, "ls", "--db", str(long_names)).stdout.splitlines()
    header = lines[1].split()
    assert header[:2] == ["id", "name"]
    assert all("…" not in word for word in header)
    for trace, line in zip(_ls_json(long_names), lines[2:], strict=True):
        short = line.split()[0]
        assert short == str(trace["id"])[-12:]
        assert _cli_at(columns, "show", short, "--db", str(long_names)).returncode == 0


@pytest.mark.parametrize("command", ["ls", "export"])
def test_a_bad_since_is_a_usage_error(store: Path, command: str) -> None:
    result = _cli(command, "--since", "soon", "--db", str(store))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tracekit: --since 'soon': expected a duration like 30m, 2h, 1d or an ISO time "
        "(see: tracekit --help)"
    ]


def test_ls_starts_without_the_sdks_or_tracing_machinery(store: Path) -> None:
    """`tracekit ls` imports neither litellm, opik, openai nor wrapt (nor importlib.metadata)."""
    probe = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "from tracekit.cli import main\n"
        f"status = main(['ls', '--db', {str(store)!r}])\n"
        "new = set(sys.modules) - before\n"
        "heavy = ('litellm', 'opik', 'openai', 'httpx', 'wrapt', 'importlib.metadata')\n"
        "print(json.dumps([status, sorted(m for m in heavy if m in new)]), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert json.loads(result.stderr.splitlines()[-1]) == [0, []], result.stderr
    assert "broken" in result.stdout
