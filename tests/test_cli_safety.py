"""The `tracekit` command on hostile or damaged stores: inert text, one-line errors, any depth."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import tracekit

TRACEKIT = str(Path(sys.executable).parent / "tracekit")

CLEAR_SCREEN = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
LINK = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
TITLE = "\x1b]0;pwned\x07"
MARKUP = ["[/]", "[link=https://evil.example]x[/link]", "[bold red]loud"]
HOSTILE = f"a{CLEAR_SCREEN}b{CLIPBOARD}c{LINK}d{TITLE}e\x07f\x7fg\x9bh\nline2"
NAMES = [f"name{CLEAR_SCREEN}", f"clip{CLIPBOARD}", f"link{LINK}", f"title{TITLE}", *MARKUP]
FORBIDDEN = (b"\x1b", b"\x07", b"\x9b", "\x9b".encode(), b"\x7f")


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run([TRACEKIT, *args], capture_output=True, timeout=120, check=False, env=env)


def _write(path: Path, body: Callable[[], None]) -> Path:
    tracekit.configure(exporter="sqlite", db_path=path, flush_interval=0.01)
    try:
        body()
        assert tracekit.flush(60)
    finally:
        tracekit.configure(exporter="none")
    return path


def _hostile_traces() -> None:
    for name in NAMES:
        with tracekit.span(name, input={"q": HOSTILE}) as root:
            root.update(output=HOSTILE, model=f"gpt{TITLE}")
            with contextlib.suppress(RuntimeError), tracekit.span(f"child {name}"):
                raise RuntimeError(HOSTILE)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Traces whose names, inputs, outputs, models and errors hold escapes and markup."""
    return _write(tmp_path_factory.mktemp("hostile") / "traces.db", _hostile_traces)


def _trace_ids(store: Path) -> list[str]:
    with sqlite3.connect(store) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM traces ORDER BY start_ns")]


def _assert_inert(output: bytes) -> None:
    for byte in FORBIDDEN:
        assert byte not in output, f"{byte!r} reached the terminal"


def test_ls_shows_hostile_names_inert_and_literal(hostile: Path) -> None:
    """ls exits 0, writes no ESC/BEL/DEL/C1 byte, and shows markup and escapes literally."""
    result = _cli("ls", "--db", str(hostile))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    _assert_inert(result.stdout)
    text = result.stdout.decode()
    for markup in MARKUP:
        assert markup in text
    assert "name\\x1b[2J" in text
    assert "clip\\x1b]52;c;ZXZpbA==\\x07" in text


@pytest.mark.parametrize("index", range(len(NAMES)))
def test_show_renders_every_hostile_field_inert(hostile: Path, index: int) -> None:
    """show exits 0 and prints names, models and error text with escapes visible, on one line."""
    trace_id = _trace_ids(hostile)[index]
    result = _cli("show", trace_id, "--db", str(hostile))
    assert result.returncode == 0, result.stderr
    _assert_inert(result.stdout)
    text = result.stdout.decode()
    assert NAMES[index].replace("\x1b", "\\x1b").replace("\x07", "\\x07") in text
    assert "gpt\\x1b]0;pwned\\x07" in text
    assert "RuntimeError" in text
    assert "a\\x1b[2Jb\\x1b]52;c;ZXZpbA==\\x07c" in text
    assert "\\x07f\\x7fg\\x9bh⏎line2" in text


def test_show_json_round_trips_hostile_values_exactly(hostile: Path) -> None:
    """show --json keeps every value exact, JSON-escaped: no control byte reaches the terminal."""
    for trace_id, name in zip(_trace_ids(hostile), NAMES, strict=True):
        result = _cli("show", trace_id, "--json", "--db", str(hostile))
        assert result.returncode == 0, result.stderr
        _assert_inert(result.stdout)
        document = json.loads(result.stdout)
        root, child = document["spans"]
        assert document["trace"]["name"] == root["name"] == name
        assert root["input"] == {"q": HOSTILE}
        assert root["output"] == HOSTILE
        assert child["error_info"]["message"] == HOSTILE


def test_export_round_trips_hostile_values_exactly(hostile: Path) -> None:
    """export writes exact values, JSON-escaped, one span per line."""
    result = _cli("export", "--db", str(hostile))
    assert result.returncode == 0, result.stderr
    _assert_inert(result.stdout)
    spans = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert {s["name"] for s in spans} >= set(NAMES)
    assert all(s["output"] == HOSTILE for s in spans if s["name"] in NAMES)


def _one_trace() -> None:
    with tracekit.span("root", input={"q": 1}), tracekit.span("child", type="tool"):
        pass


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small trace written by tracekit, copied and damaged by each test below."""
    return _write(tmp_path_factory.mktemp("pristine") / "traces.db", _one_trace)


UNCONSTRAINED = [
    "CREATE TABLE s2 AS SELECT * FROM spans",
    "DROP TABLE spans",
    "ALTER TABLE s2 RENAME TO spans",
    "CREATE TABLE t2 AS SELECT * FROM traces",
    "DROP TABLE traces",
    "ALTER TABLE t2 RENAME TO traces",
]
DAMAGE = {
    "input not JSON": ["UPDATE spans SET input = '{not json'"],
    "trace output not JSON": ["UPDATE traces SET output = 'nope'"],
    "start_ns text": ["UPDATE spans SET start_ns = 'yesterday' WHERE name = 'child'"],
    "trace start_ns text": ["UPDATE traces SET start_ns = 'yesterday'"],
    "end_ns real": ["UPDATE spans SET end_ns = 1.5"],
    "error_info list": [
        """UPDATE spans SET error_info = '["boom", 1]'""",
        """UPDATE traces SET error_info = '["boom", 1]'""",
    ],
    "error_info string": ["""UPDATE spans SET error_info = '"\\u001b[2J"'"""],
    "usage and metadata lists": ["UPDATE spans SET usage = '[1]', metadata = '[2]', model = 'm'"],
    "NULL names": [*UNCONSTRAINED, "UPDATE spans SET name = NULL", "UPDATE traces SET name = NULL"],
    "blob name with ESC": ["UPDATE spans SET name = X'1b5b324a'"],
    "invalid UTF-8 name": ["UPDATE spans SET name = CAST(X'ff1b5d303b78' AS TEXT)"],
    "unknown type": ["UPDATE spans SET type = 'banana[/]'"],
    "parent loop": ["UPDATE spans SET parent_id = id"],
    "two-span loop": [
        "UPDATE spans SET parent_id = (SELECT id FROM spans WHERE name = 'child')"
        " WHERE name = 'root'"
    ],
    "missing column": ["ALTER TABLE spans DROP COLUMN usage"],
    "tags object": [*UNCONSTRAINED, """UPDATE spans SET tags = '{"a": 1}'"""],
}


def _damaged(pristine: Path, tmp_path: Path, statements: list[str]) -> Path:
    store = tmp_path / "traces.db"
    shutil.copy(pristine, store)
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        for statement in statements:
            conn.execute(statement)
    return store


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize(
    "command", [("ls",), ("show", "last"), ("show", "last", "--json"), ("export",)]
)
def test_malformed_rows_give_one_line_or_a_rendering(
    pristine: Path, tmp_path: Path, damage: str, command: tuple[str, ...]
) -> None:
    """A hand-damaged row: exit 1 with one `tracekit:` line, or 0 quietly; never a traceback."""
    store = _damaged(pristine, tmp_path, DAMAGE[damage])
    result = _cli(*command, "--db", str(store))
    assert b"Traceback" not in result.stderr
    assert result.returncode in (0, 1)
    if result.returncode == 1:
        assert result.stderr.startswith(b"tracekit: ")
        assert result.stderr.count(b"\n") == 1
    else:
        assert result.stderr == b""
    if "--json" not in command and command != ("export",):
        _assert_inert(result.stdout)


def test_damaged_rows_that_can_be_drawn_are_drawn(pristine: Path, tmp_path: Path) -> None:
    """An unknown type, a NULL name and an error_info list are shown, not refused."""
    statements = [*UNCONSTRAINED, *DAMAGE["error_info list"], *DAMAGE["unknown type"]]
    store = _damaged(
        pristine, tmp_path, [*statements, "UPDATE spans SET name = NULL WHERE name = 'child'"]
    )
    result = _cli("show", "last", "--db", str(store))
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "[banana[/]]" in text
    assert '["boom",1]' in text
    assert len([line for line in text.splitlines() if "[banana[/]]" in line]) == 2


def _deep_trace(depth: int) -> Callable[[], None]:
    def body() -> None:
        with contextlib.ExitStack() as stack:
            for level in range(depth):
                stack.enter_context(tracekit.span(f"level{level}"))

    return body


def test_a_10000_deep_trace_renders_without_recursion(tmp_path: Path) -> None:
    """show draws a 10,000-level trace: every span once, the deep ones flat with their depth."""
    store = _write(tmp_path / "traces.db", _deep_trace(10_000))
    result = _cli("show", "last", "--db", str(store))
    assert b"Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 10_002  # the title takes two lines
    assert max(len(line) for line in lines) <= 200
    assert "[depth 9999] level9999" in lines[-1]
    as_json = _cli("show", "last", "--json", "--db", str(store))
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)["spans"]) == 10_000


def test_the_plain_text_tree_walks_any_depth(tmp_path: Path) -> None:
    """tracekit.testing's tree text draws a 10,000-level trace without RecursionError."""
    with tracekit.testing.capture() as captured:
        _deep_trace(10_000)()
    lines = captured.tree().splitlines()
    assert len(lines) == 10_001
    assert lines[-1].endswith("level9999 [general] " + lines[-1].rsplit(" ", 2)[-2] + " ms")
    assert "[depth 9999]" in lines[-1]
    assert max(len(line) for line in lines) < 400


@pytest.mark.parametrize("damage", ["parent loop", "two-span loop"])
def test_spans_in_a_parent_loop_are_still_drawn(
    pristine: Path, tmp_path: Path, damage: str
) -> None:
    """Spans whose parent links loop are drawn once each, the loop broken where it closes."""
    store = _damaged(pristine, tmp_path, DAMAGE[damage])
    result = _cli("show", "last", "--db", str(store))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()[2:]
    labels = [re.sub(r"^[█ ]*[│├└─ ]*", "", line).split()[0] for line in lines]
    assert sorted(labels) == ["child", "root"]
