"""`tracekit`: read the local SQLite trace store.

    tracekit ls [--limit N] [--project P] [--errors]
    tracekit show TRACE_ID|last [--json]
    tracekit export [--since 2h|ISO-TIME] [--format jsonl]

Every command takes `--db PATH` (default: `$TRACEKIT_DB`, else
`.tracekit/traces.db`). Problems (no store, a corrupt file, an unknown id)
print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tracekit import _store
from tracekit._records import SpanRecord, TraceRecord

__all__ = ["main"]

DEFAULT_DB = Path(".tracekit") / "traces.db"
TIMELINE_WIDTH = 24
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class UsageError(Exception):
    """A bad argument value, reported in one line."""


def _db_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("TRACEKIT_DB") or DEFAULT_DB)


def _duration(ms: float | None) -> str:
    if ms is None:
        return "running"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.2f} s"


def _tokens(usage: dict[str, Any] | None) -> int | None:
    total = (usage or {}).get("total_tokens")
    return total if isinstance(total, int) else None


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def cmd_ls(conn: sqlite3.Connection, args: argparse.Namespace, console: Console) -> None:
    rows = _store.list_traces(conn, limit=args.limit, project=args.project, errors_only=args.errors)
    table = Table(title=f"{len(rows)} most recent trace(s)", title_justify="left")
    for column in ("trace id", "name", "started", "duration", "spans", "errors"):
        table.add_column(column, no_wrap=True)
    table.add_column("tokens", justify="right")
    table.add_column("cost $", justify="right")
    for row in rows:
        trace = row.trace
        ms = (
            None
            if trace.end_time is None
            else (trace.end_time - trace.start_time).total_seconds() * 1000
        )
        table.add_row(
            trace.id,
            trace.name,
            _local(trace.start_time),
            _duration(ms),
            str(row.span_count),
            Text(str(row.errors), style="bold red") if row.errors else Text("0"),
            "" if row.total_tokens is None else str(row.total_tokens),
            "" if row.total_cost is None else f"{row.total_cost:.6f}",
        )
    console.print(table)


def _bar(span: SpanRecord, start: datetime, total_ms: float) -> str:
    if total_ms <= 0:
        return "█".ljust(TIMELINE_WIDTH)
    offset_ms = (span.start_time - start).total_seconds() * 1000
    length_ms = span.duration_ms or 0.0
    first = min(TIMELINE_WIDTH - 1, int(offset_ms / total_ms * TIMELINE_WIDTH))
    width = max(1, round(length_ms / total_ms * TIMELINE_WIDTH))
    return (" " * first + "█" * width)[:TIMELINE_WIDTH].ljust(TIMELINE_WIDTH)


def _span_label(span: SpanRecord, start: datetime, total_ms: float) -> Text:
    label = Text()
    label.append(_bar(span, start, total_ms), style="cyan")
    label.append(f" {span.name}", style="bold")
    label.append(f" [{span.type}] {_duration(span.duration_ms)}", style="dim")
    if span.type == "llm" or span.model:
        if span.model:
            label.append(f" {span.model}", style="magenta")
        tokens = _tokens(span.usage)
        if tokens is not None:
            label.append(f" {tokens} tokens", style="magenta")
    if span.metadata and span.metadata.get("generator_completed") is False:
        label.append(" (not completed)", style="yellow")
    if span.error_info:
        label.append(
            f" {span.error_info['exception_type']}: {span.error_info.get('message', '')}",
            style="bold red",
        )
    return label


def _record_json(record: SpanRecord | TraceRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    del data["start_ns"], data["end_ns"]
    end = record.end_time
    data["start_time"] = record.start_time.isoformat()
    data["end_time"] = None if end is None else end.isoformat()
    return data


def cmd_show(conn: sqlite3.Connection, args: argparse.Namespace, console: Console) -> None:
    trace_id = _store.resolve_trace_id(conn, args.trace_id)
    trace = _store.load_trace(conn, trace_id)
    spans = _store.load_spans(conn, trace_id)
    if args.json:
        document = {
            "trace": None if trace is None else _record_json(trace),
            "spans": [_record_json(s) for s in spans],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return
    if not spans:
        raise _store.StoreError(f"trace {trace_id} has no spans")
    start = min(s.start_time for s in spans)
    end = max((s.end_time or s.start_time) for s in spans)
    total_ms = (end - start).total_seconds() * 1000
    ids = {s.id for s in spans}
    children: defaultdict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    title = Text(f"trace {trace_id}", style="bold")
    if trace is not None:
        title.append(f"  {trace.name}  {_local(trace.start_time)}", style="dim")
        if trace.project_name:
            title.append(f"  project={trace.project_name}", style="dim")
        if trace.thread_id:
            title.append(f"  thread={trace.thread_id}", style="dim")
    else:
        title.append("  (root span never ended)", style="yellow")
    tree = Tree(title)

    def add(node: Tree, span: SpanRecord) -> None:
        branch = node.add(_span_label(span, start, total_ms))
        for child in children.get(span.id, []):
            add(branch, child)

    for root in children.get(None, []):
        add(tree, root)
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
    for span in _store.iter_spans(conn, since):
        out.write(json.dumps(_record_json(span), ensure_ascii=False) + "\n")


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

    show = commands.add_parser("show", parents=[common], help="print one trace as a tree")
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
    try:
        conn = _store.connect(_db_path(args.db), create=False)
        try:
            args.run(conn, args, console)
        finally:
            conn.close()
    except (_store.StoreError, UsageError, sqlite3.DatabaseError) as exc:
        print(f"tracekit: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tracekit export | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
