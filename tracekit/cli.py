"""`tracekit`: read the local SQLite trace store.

    tracekit ls [--limit N] [--project P] [--errors]
    tracekit show TRACE_ID|last [--json]
    tracekit export [--since 2h|ISO-TIME] [--format jsonl]

Every command takes `--db PATH` (default: `$TRACEKIT_DB`, else
`.tracekit/traces.db`). Problems (no store, a corrupt file, an unknown id,
a row or table that does not fit tracekit's schema) print one line on stderr
and exit with status 1.

The human views (`ls`, `show`) print the store's text as inert text: control
characters (ESC, BEL, DEL, C0, C1) and bidi overrides are shown as escapes
such as `\\x1b`, newlines as `⏎`, rich markup literally, and long values are
cut. `show --json` and `export` print the exact values as JSON, with those
characters JSON-escaped. Trees of any depth are drawn; nesting deeper than
the width allows is drawn flat, each deeper span labelled with its depth.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tracekit import _store
from tracekit._display import error_text, inert, json_safe, score_text
from tracekit._records import FeedbackScore, SpanRecord, TraceRecord
from tracekit._span import utc_datetime
from tracekit._tree import walk

__all__ = ["main"]

DEFAULT_DB = Path(".tracekit") / "traces.db"
TIMELINE_WIDTH = 24
MIN_DRAWN_LEVELS = 8
LABEL_WIDTH = 80  # what a deep span's label keeps of the width
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class UsageError(Exception):
    """A bad argument value, reported in one line."""


_R = TypeVar("_R", SpanRecord, TraceRecord)


class MalformedStore(Exception):
    """A row of the store that tracekit cannot have written, reported in one line."""


@contextlib.contextmanager
def _reading(what: str) -> Iterator[None]:
    """Report a row the store module cannot decode (bad JSON, odd types) as `MalformedStore`."""
    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedStore(f"{what}: a row is malformed ({type(exc).__name__}: {exc})") from exc


def _checked(record: _R) -> _R:
    """`record`, once its times are known to be drawable; names and JSON of any shape are shown."""
    kind = "span" if isinstance(record, SpanRecord) else "trace"
    for field in ("start_ns", "end_ns"):
        value = getattr(record, field)
        if value is None and field == "end_ns":
            continue
        if type(value) is not int:
            raise MalformedStore(
                f"{kind} {inert(record.id, 60)}: {field} is {inert(repr(value), 60)}, not a time"
            )
    try:
        _local(record.start_time)
        if record.end_time is not None:
            _local(record.end_time)
    except (ValueError, OverflowError, OSError) as exc:
        raise MalformedStore(f"{kind} {inert(record.id, 60)}: time out of range ({exc})") from exc
    return record


def _text(value: Any, style: str = "", limit: int = 200) -> Text:
    return Text(inert(value, limit), style=style)


def _db_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("TRACEKIT_DB") or DEFAULT_DB)


def _duration(ms: float | None) -> str:
    if ms is None:
        return "running"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.2f} s"


def _tokens(usage: Any) -> int | None:
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else None


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def cmd_ls(conn: sqlite3.Connection, args: argparse.Namespace, console: Console) -> None:
    with _reading("cannot list the traces"):
        rows = _store.list_traces(
            conn, limit=args.limit, project=args.project, errors_only=args.errors
        )
    table = Table(title=f"{len(rows)} most recent trace(s)", title_justify="left")
    for column in ("trace id", "name", "started", "duration", "spans", "errors"):
        table.add_column(column, no_wrap=True)
    table.add_column("tokens", justify="right")
    table.add_column("cost $", justify="right")
    for row in rows:
        trace = _checked(row.trace)
        ms = (
            None
            if trace.end_time is None
            else (trace.end_time - trace.start_time).total_seconds() * 1000
        )
        table.add_row(
            _text(trace.id, limit=60),
            _text(trace.name, limit=60),
            Text(_local(trace.start_time)),
            Text(_duration(ms)),
            _text(row.span_count),
            _text(row.errors, "bold red") if row.errors else Text("0"),
            _text(row.total_tokens),
            Text("" if row.total_cost is None else _cost(row.total_cost)),
        )
    console.print(table)


def _cost(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, int | float) else inert(value, 20)


def _bar(span: SpanRecord, start: datetime, total_ms: float) -> str:
    if total_ms <= 0:
        return "█".ljust(TIMELINE_WIDTH)
    offset_ms = (span.start_time - start).total_seconds() * 1000
    length_ms = span.duration_ms or 0.0
    first = min(TIMELINE_WIDTH - 1, int(offset_ms / total_ms * TIMELINE_WIDTH))
    width = max(1, round(length_ms / total_ms * TIMELINE_WIDTH))
    return (" " * first + "█" * width)[:TIMELINE_WIDTH].ljust(TIMELINE_WIDTH)


def _span_label(span: SpanRecord, start: datetime, total_ms: float, depth: int | None) -> Text:
    label = Text()
    label.append(_bar(span, start, total_ms), style="cyan")
    if depth is not None:
        label.append(f" [depth {depth}]", style="dim")
    label.append(f" {inert(span.name)}", style="bold")
    label.append(f" [{inert(span.type, 40)}] {_duration(span.duration_ms)}", style="dim")
    if span.type == "llm" or span.model:
        if span.model:
            label.append(f" {inert(span.model, 80)}", style="magenta")
        tokens = _tokens(span.usage)
        if tokens is not None:
            label.append(f" {tokens} tokens", style="magenta")
    if isinstance(span.metadata, dict) and span.metadata.get("generator_completed") is False:
        label.append(" (not completed)", style="yellow")
    if span.error_info:
        label.append(f" {error_text(span.error_info)}", style="bold red")
    _append_scores(label, span.feedback_scores)
    return label


def _append_scores(label: Text, scores: Sequence[Any]) -> None:
    """One line per feedback score under `label`."""
    for score in scores:
        label.append("\n" + score_text(score), style="green")


def _record_json(record: SpanRecord | TraceRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    del data["start_ns"], data["end_ns"]
    end = record.end_time
    data["start_time"] = record.start_time.isoformat()
    data["end_time"] = None if end is None else end.isoformat()
    data["feedback_scores"] = [_score_json(score) for score in record.feedback_scores]
    return data


def _score_json(score: FeedbackScore) -> dict[str, Any]:
    data = dataclasses.asdict(score)
    given = data.pop("given_ns")
    data["given_time"] = utc_datetime(given).isoformat() if isinstance(given, int) else given
    return data


def _dumps(document: Any, indent: int | None = None) -> str:
    # Blobs from a hand-edited store have no JSON form: shown as their repr.
    return json_safe(json.dumps(document, indent=indent, ensure_ascii=False, default=repr))


def cmd_show(conn: sqlite3.Connection, args: argparse.Namespace, console: Console) -> None:
    trace_id = _store.resolve_trace_id(conn, args.trace_id)
    with _reading(f"cannot read trace {inert(trace_id, 60)}"):
        trace = _store.load_trace(conn, trace_id)
        spans = _store.load_spans(conn, trace_id)
    if trace is not None:
        _checked(trace)
    for span in spans:
        _checked(span)
    if args.json:
        document = {
            "trace": None if trace is None else _record_json(trace),
            "spans": [_record_json(s) for s in spans],
        }
        sys.stdout.write(_dumps(document, indent=2) + "\n")
        return
    if not spans:
        raise _store.StoreError(f"trace {trace_id} has no spans")
    start = min(s.start_time for s in spans)
    end = max((s.end_time or s.start_time) for s in spans)
    total_ms = (end - start).total_seconds() * 1000
    title = _text(f"trace {trace_id}", "bold")
    if trace is not None:
        title.append(f"  {inert(trace.name)}  {_local(trace.start_time)}", style="dim")
        if trace.project_name:
            title.append(f"  project={inert(trace.project_name, 80)}", style="dim")
        if trace.thread_id:
            title.append(f"  thread={inert(trace.thread_id, 80)}", style="dim")
        _append_scores(title, trace.feedback_scores)
    else:
        title.append("  (root span never ended)", style="yellow")
        with _reading(f"cannot read trace {inert(trace_id, 60)}"):
            late = _store.load_scores(conn, trace_id).get((trace_id, None), [])
        _append_scores(title, late)
    tree = Tree(title)
    # Guides take 4 columns a level: deeper spans are drawn flat, labelled with their depth.
    max_level = max(MIN_DRAWN_LEVELS, (console.width - LABEL_WIDTH) // 4)
    nodes = [tree]  # nodes[level]: the last node drawn at that level
    for depth, _last, span in walk(spans):
        level = min(depth, max_level)
        del nodes[level + 1 :]
        label = _span_label(span, start, total_ms, depth if depth > max_level else None)
        nodes.append(nodes[level].add(label))
    console.print(tree)


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = relative.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration like 30m, 2h, 1d or an ISO time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_export(conn: sqlite3.Connection, args: argparse.Namespace, console: Console) -> None:
    since = _parse_since(args.since)
    out = sys.stdout
    with _reading("cannot export the spans"):
        trace_scores = _store.load_scores(conn)
        for span in _store.iter_spans(conn, since):
            line = _record_json(_checked(span))
            if span.parent_id is None:  # a root span carries its trace's scores too
                line["trace_feedback_scores"] = [
                    _score_json(score) for score in trace_scores.get((span.trace_id, None), [])
                ]
            out.write(_dumps(line) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracekit", description="Show traces from the local tracekit store."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="trace store (default: $TRACEKIT_DB or .tracekit/traces.db)")
    commands = parser.add_subparsers(dest="command", required=True)

    ls = commands.add_parser("ls", parents=[common], help="list recent traces")
    ls.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    ls.add_argument("--project", help="only traces of this project")
    ls.add_argument("--errors", action="store_true", help="only traces with an error")
    ls.set_defaults(run=cmd_ls)

    show = commands.add_parser(
        "show",
        parents=[common],
        help="print one trace as a tree",
        description=(
            "Print one trace as a tree. Text from the store is shown inert: control"
            " characters as escapes such as \\x1b, newlines as ⏎, markup literally,"
            " long values cut. Trees of any depth are drawn: nesting deeper than the"
            " width allows (at least 8 levels) is drawn flat, each such span marked"
            " [depth N]. --json prints the exact values."
        ),
    )
    show.add_argument("trace_id", help="a trace id, a unique prefix of one, or 'last'")
    show.add_argument("--json", action="store_true", help="print the trace as JSON")
    show.set_defaults(run=cmd_show)

    export = commands.add_parser("export", parents=[common], help="print spans for piping")
    export.add_argument("--since", help="only spans started since: 30m, 2h, 1d or ISO time")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(run=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tracekit` command; returns the exit status."""
    args = _parser().parse_args(argv)
    # Piped output is not cut at 80 columns: ids must stay whole to be pasted.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    path = _db_path(args.db)
    try:
        conn = _store.connect(path, create=False)
        # Text a hand-edited store holds as invalid UTF-8 is shown with U+FFFD, not refused.
        conn.text_factory = lambda data: data.decode("utf-8", "replace")
        try:
            args.run(conn, args, console)
        finally:
            conn.close()
    except (_store.StoreError, UsageError, MalformedStore) as exc:
        return _fail(str(exc))
    except sqlite3.DatabaseError as exc:  # a table of another shape, a damaged page
        return _fail(f"cannot read the trace store at {path}: {exc}")
    except BrokenPipeError:  # `tracekit export | head`
        return 0
    except Exception as exc:  # the store is user data: a viewer prints no traceback
        return _fail(f"cannot show the trace store at {path}: {type(exc).__name__}: {exc}")
    return 0


def _fail(message: str) -> int:
    print(f"tracekit: {inert(message, 1000)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
