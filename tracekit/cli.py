"""`tracekit`: read the local SQLite trace store.

    tracekit ls [--limit N] [--offset N] [--project P] [--name N] [--since 2h] [--errors] [--json]
    tracekit show TRACE_ID|last [--json]
    tracekit export [--since 2h|ISO-TIME] [--format jsonl]
    tracekit --version

Every command takes `--db PATH` (default: `$TRACEKIT_DB`, else
`.tracekit/traces.db`). Problems (no store, a corrupt file, an unknown id,
a row or table that does not fit tracekit's schema) print one line on stderr
and exit with status 1; usage errors (argparse's) exit with status 2.

The human views (`ls`, `show`) print the store's text as inert text: control
characters (ESC, BEL, DEL, C0, C1) and bidi overrides are shown as escapes
such as `\\x1b`, newlines as `⏎`, rich markup literally, and long values are
cut. `show --json` and `export` print the exact values as JSON, with those
characters JSON-escaped. `show` draws the tree with `tracekit._show`.
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
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tracekit import _store
from tracekit._display import inert, json_safe, score_text
from tracekit._records import FeedbackScore, SpanRecord, TraceRecord
from tracekit._show import ShowOptions, duration_text, render
from tracekit._span import utc_datetime

__all__ = ["main"]

DEFAULT_DB = Path(".tracekit") / "traces.db"
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


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# `ls` columns that give way on a narrow terminal, the first to go first.
_DROPPABLE = ("cost $", "tokens", "err", "started", "spans", "took")
SHORT_ID = 12  # the random tail of a UUIDv7: unique where its time prefix is not
NAME_MIN = 10


def short_id(trace_id: str) -> str:
    """What `ls` shows of an id: its random end, which `show` accepts as well as a prefix."""
    return trace_id[-SHORT_ID:]


def _started(when: datetime) -> str:
    local = when.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%m-%d %H:%M")


def _ls_rows(rows: Sequence[_store.TraceSummary]) -> list[dict[str, str]]:
    table = []
    for row in rows:
        trace = _checked(row.trace)
        ms = (
            None
            if trace.end_time is None
            else (trace.end_time - trace.start_time).total_seconds() * 1000
        )
        table.append(
            {
                "id": inert(short_id(str(trace.id)), SHORT_ID),
                "name": inert(trace.name, 60),
                "started": _started(trace.start_time),
                "took": duration_text(ms),
                "spans": inert(row.span_count, 10),
                "err": inert(row.errors, 10) if row.errors else "0",
                "tokens": "" if row.total_tokens is None else inert(row.total_tokens, 12),
                "cost $": "" if row.total_cost is None else _cost(row.total_cost),
            }
        )
    return table


def _ls_columns(table: list[dict[str, str]], width: int) -> list[str]:
    """The columns that fit `width`, dropping the least needed first (never id and name)."""
    columns = ["id", "name", "started", "took", "spans", "err", "tokens", "cost $"]

    def needed(column: str) -> int:
        return max([len(column), *(len(line[column]) for line in table)]) + 2

    for droppable in _DROPPABLE:
        fixed = sum(needed(c) for c in columns if c != "name")
        if fixed + NAME_MIN + 2 <= width:
            break
        columns.remove(droppable)
    return columns


def cmd_ls(conn: sqlite3.Connection, args: argparse.Namespace, console: Console) -> None:
    since = _parse_since(args.since)
    with _reading("cannot list the traces"):
        rows = _store.list_traces(
            conn,
            limit=args.limit,
            offset=args.offset,
            project=args.project,
            errors_only=args.errors,
            since_ns=None if since is None else min(int(since.timestamp() * 1e9), 2**63 - 1),
            name=args.name,
        )
    if args.json:
        for row in rows:
            line = _record_json(_checked(row.trace))
            line |= {"span_count": row.span_count, "errors": row.errors}
            line |= {"total_tokens": row.total_tokens, "total_cost": row.total_cost}
            sys.stdout.write(_dumps(line) + "\n")
        return
    filtered = any((args.project, args.errors, args.since, args.name, args.offset))
    if not rows:
        where = _db_path(args.db).absolute()
        console.print(
            Text(f"no traces {'match' if filtered else 'yet'} in {where}"), soft_wrap=True
        )
        return
    lines = _ls_rows(rows)
    columns = _ls_columns(lines, console.width)
    first = args.offset + 1
    title = f"traces {first}-{first + len(rows) - 1}, newest first"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, padding=(0, 1))
    widths = {c: max([len(c), *(len(line[c]) for line in lines)]) for c in columns}
    fixed = sum(widths[c] + 2 for c in columns if c != "name")
    for column in columns:
        right = column in ("spans", "err", "tokens", "cost $")
        is_name = column == "name"
        table.add_column(
            column,
            justify="right" if right else "left",
            no_wrap=True,
            overflow="ellipsis",
            # Only the name gives way: capped, it leaves every other column its whole width.
            min_width=NAME_MIN if is_name else None,
            max_width=max(NAME_MIN, console.width - fixed - 1) if is_name else None,
        )
    for line in lines:
        cells = [
            Text(line[c], style="bold red" if c == "err" and line[c] != "0" else "")
            for c in columns
        ]
        table.add_row(*cells)
    console.print(table)


def _cost(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, int | float) else inert(value, 20)


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
    title = _text(f"trace {trace_id}", "bold")
    if trace is not None:  # the details on a line of their own: the id alone takes 42 columns
        title.append(f"  {inert(trace.name)}\n{_local(trace.start_time)}", style="dim")
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
    options = ShowOptions(
        width=console.width, full=args.full, errors_only=args.errors, span_name=args.span
    )
    tree, errors = render(spans, options)
    console.print(title)  # wrapped, as the error messages: all of them is worth reading
    for line in tree:  # a span a line, cut at the width (--full: whole values, wrapped)
        console.print(line, no_wrap=not args.full, crop=not args.full, soft_wrap=args.full)
    if errors:
        console.print()
        for line in errors:
            console.print(line)


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


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def _version() -> str:
    import importlib.metadata  # ~25 ms to import: only for --version

    try:
        return importlib.metadata.version("tracekit")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


class _VersionAction(argparse.Action):
    """`--version`, the installed version looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"tracekit {_version()}\n")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (status 2, argparse's convention)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see: {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tracekit",
        description="Show traces from the local tracekit store (a SQLite file).",
        epilog="Usage errors print one line and exit with status 2; problems reading the "
        "store print one line and exit with status 1.",
    )
    parser.add_argument("--version", action=_VersionAction)
    common = _Parser(add_help=False)
    common.add_argument(
        "--db",
        metavar="PATH",
        help="the trace store (default: $TRACEKIT_DB, else .tracekit/traces.db in the "
        "current directory)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = commands.add_parser(
        "ls",
        parents=[common],
        help="list recent traces",
        description="List traces, newest first: the end of each id (which `tracekit show` "
        "accepts), root name, start, duration, spans, errors, tokens, cost. Columns give "
        "way on a narrow terminal (cost first); piped, the width is $COLUMNS, else 200.",
    )
    ls.add_argument("--limit", type=_count(1), default=20, help="how many (default 20)")
    ls.add_argument(
        "--offset", type=_count(0), default=0, help="skip this many of the newest first"
    )
    ls.add_argument("--project", help="only traces of this project")
    ls.add_argument("--name", help="only traces whose root has this name")
    ls.add_argument("--since", help="only traces started since: 30m, 2h, 1d or an ISO time")
    ls.add_argument("--errors", action="store_true", help="only traces with an error")
    ls.add_argument("--json", action="store_true", help="one JSON object per trace, ids whole")
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
    show.add_argument(
        "trace_id", help="'last', a trace id, or a unique start or end of one (as `ls` shows)"
    )
    show.add_argument("--json", action="store_true", help="print the trace as JSON")
    show.add_argument(
        "--full", action="store_true", help="print each span's whole input and output under it"
    )
    show.add_argument("--errors", action="store_true", help="only the spans on a path to an error")
    show.add_argument("--span", metavar="NAME", help="only the subtrees of spans called NAME")
    show.set_defaults(run=cmd_show)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="print spans for piping",
        description="Print every span, one JSON object per line, oldest first; a root span "
        "also carries its trace's feedback scores.",
    )
    export.add_argument("--since", help="only spans started since: 30m, 2h, 1d or an ISO time")
    export.add_argument(
        "--format", choices=["jsonl"], default="jsonl", help="jsonl: one JSON object per line"
    )
    export.set_defaults(run=cmd_export)
    return parser


def _console() -> Console:
    """The terminal's width; piped, $COLUMNS, else 200 (ids stay whole to be pasted)."""
    if sys.stdout.isatty():
        return Console()
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) >= 20 else 200
    return Console(width=width)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tracekit` command; returns the exit status."""
    args = _parser().parse_args(argv)
    console = _console()
    path = _db_path(args.db)
    try:
        conn = _store.connect(path, create=False)
        # Text a hand-edited store holds as invalid UTF-8 is shown with U+FFFD, not refused.
        conn.text_factory = lambda data: data.decode("utf-8", "replace")
        try:
            args.run(conn, args, console)
        finally:
            conn.close()
    except UsageError as exc:  # a bad option value: argparse's status
        print(f"tracekit: {inert(str(exc), 1000)} (see: tracekit --help)", file=sys.stderr)
        return 2
    except (_store.StoreError, MalformedStore) as exc:
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
