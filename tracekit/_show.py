"""`tracekit show`'s tree: one line per span, its bar in one timeline column.

Each line is `timeline-bar  tree-guides name [type] duration ...markers
input → output`: the bars come first, so a child that starts with its parent
lines up with it whatever the depth. A span's error is one marker in the
tree (`✗ Type`); the messages are listed below the tree. Feedback scores get
a line each under their span. All text from the store is inert
(`tracekit._display`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text

from tracekit._display import error_text, inert, score_text
from tracekit._records import SpanRecord
from tracekit._tree import walk

__all__ = ["ShowOptions", "duration_text", "render"]

TIMELINE_WIDTH = 24  # at 144 columns and more; a sixth of a narrower terminal
MIN_DRAWN_LEVELS = 8
LABEL_WIDTH = 80  # what a deep span's label keeps of the width
FULL_VALUE = 20_000  # how much of a value --full prints


@dataclass(frozen=True)
class ShowOptions:
    """What `tracekit show` was asked for."""

    width: int
    full: bool = False  # whole input and output under each span
    errors_only: bool = False  # only the spans on a path to an error
    span_name: str | None = None  # only the subtrees of spans with this name


def duration_text(ms: float | None) -> str:
    """A duration as `ls` and `show` print it."""
    if ms is None:
        return "running"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _bar(span: SpanRecord, start: datetime, total_ms: float, columns: int) -> str:
    if total_ms <= 0:
        return "█".ljust(columns)
    offset_ms = (span.start_time - start).total_seconds() * 1000
    length_ms = span.duration_ms or 0.0
    first = min(columns - 1, int(offset_ms / total_ms * columns))
    width = max(1, round(length_ms / total_ms * columns))
    return (" " * first + "█" * width)[:columns].ljust(columns)


def _value(value: Any, limit: int) -> str:
    """A stored value on one line: JSON, inert, cut."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    return inert(text, limit)


def _preview(span: SpanRecord, limit: int) -> str:
    """`input → output` on one line, at most `limit` characters ("" when nothing fits)."""
    if limit < 12 or (span.input is None and span.output is None):
        return ""
    half = max(4, limit // 2 - 2)
    given = span.input
    if isinstance(given, dict):
        shown = ", ".join(f"{inert(k, 40)}={_value(v, half)}" for k, v in list(given.items())[:8])
    else:
        shown = "" if given is None else _value(given, half)
    if span.output is None:  # nothing returned (or it failed): the input alone
        return inert(shown, limit)
    return inert(f"{inert(shown, half)} → {_value(span.output, half)}".strip(), limit)


def _markers(span: SpanRecord) -> list[tuple[str, str]]:
    """What went wrong or stopped early, as (text, style)."""
    found: list[tuple[str, str]] = []
    metadata = span.metadata if isinstance(span.metadata, dict) else {}
    if span.error_info:
        kind = span.error_info.get("exception_type") if isinstance(span.error_info, dict) else None
        found.append((f"✗ {inert(kind or 'error', 60)}", "bold red"))
    if metadata.get("stream_completed") is False:
        found.append(("(stream not completed)", "yellow"))
    if metadata.get("generator_completed") is False:
        found.append(("(not completed)", "yellow"))
    if interrupted := metadata.get("interrupted_by"):
        found.append((f"⚠ {inert(interrupted, 60)}", "yellow"))  # what stopped it
    return found


def _label(span: SpanRecord, depth: int | None) -> Text:
    label = Text()
    if depth is not None:
        label.append(f"[depth {depth}] ", style="dim")
    label.append(inert(span.name), style="bold")
    label.append(f" [{inert(span.type, 40)}]", style="dim")
    for text, style in _markers(span):  # early in the line: the last to be cut
        label.append(f" {text}", style=style)
    label.append(f" {duration_text(span.duration_ms)}", style="dim")
    if span.model:
        label.append(f" {inert(span.model, 80)}", style="magenta")
    usage = span.usage
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, int):
        label.append(f" {tokens} tokens", style="magenta")
    return label


def _chosen(spans: Sequence[SpanRecord], options: ShowOptions) -> list[SpanRecord]:
    """The spans `--errors` / `--span` keep: failing paths, or the named subtrees."""
    by_id = {span.id: span for span in spans}
    if options.span_name is not None:
        tops = {s.id for s in spans if s.name == options.span_name}
        kept = []
        for span in spans:  # a span is kept when it or an ancestor is a chosen top
            node: SpanRecord | None = span
            seen: set[str] = set()
            while node is not None and node.id not in tops and node.id not in seen:
                seen.add(node.id)
                node = by_id.get(node.parent_id) if node.parent_id else None
            if node is not None and node.id in tops:
                kept.append(span)
        spans = kept
    if options.errors_only:
        on_path: set[str] = set()
        for span in spans:
            if not span.error_info:
                continue
            node = span
            while node is not None and node.id not in on_path:
                on_path.add(node.id)
                node = by_id.get(node.parent_id) if node.parent_id else None
        spans = [s for s in spans if s.id in on_path]
    return list(spans)


def render(spans: Sequence[SpanRecord], options: ShowOptions) -> tuple[list[Text], list[Text]]:
    """The tree's lines (one per span, per score; cut at the width, unless --full), and the
    error messages to print in full below it."""
    shown = _chosen(spans, options)
    tree = list(_tree_lines(spans, shown, options))
    failed = [s for s in shown if s.error_info]
    errors = [Text("errors:", style="bold red")] if failed else []
    errors += [
        Text(f"  {inert(span.name, 80)}: {error_text(span.error_info)}", style="red")
        for span in failed
    ]
    return tree, errors


def _tree_lines(
    spans: Sequence[SpanRecord], shown: Sequence[SpanRecord], options: ShowOptions
) -> Iterable[Text]:
    """`shown`'s lines, on the timeline of the whole trace (`spans`)."""
    if not shown:
        yield Text("(no span matches)", style="dim")
        return
    start = min(s.start_time for s in spans)
    end = max((s.end_time or s.start_time) for s in spans)
    total_ms = (end - start).total_seconds() * 1000
    timeline = min(TIMELINE_WIDTH, max(8, options.width // 6))
    max_level = max(MIN_DRAWN_LEVELS, (options.width - timeline - LABEL_WIDTH) // 4)
    lasts: list[bool] = []  # lasts[level]: was the span drawn at that level its parent's last?
    for depth, last, span in walk(shown):
        level = min(depth, max_level)
        del lasts[level:]
        lasts.append(last)
        guides = "".join("    " if above else "│   " for above in lasts[:-1])
        guides += "└── " if last else "├── "
        line = Text(_bar(span, start, total_ms, timeline) + " ", style="cyan")
        line.append(guides)
        line.append_text(_label(span, depth if depth > max_level else None))
        room = options.width - line.cell_len - 2
        preview = "" if options.full else _preview(span, room)
        if preview:
            line.append(f"  {preview}", style="dim")
        yield line
        pad = " " * (timeline + 1) + "".join("    " if a else "│   " for a in lasts)
        if options.full:
            for name, value in (("input", span.input), ("output", span.output)):
                if value is not None:
                    yield Text(f"{pad}{name}: {_value(value, FULL_VALUE)}", style="dim")
        for score in span.feedback_scores:
            yield Text(pad + score_text(score), style="green")
