"""Trace trees: an iterative walk, and plain text for the console exporter, the demo and tests.

Walking is iterative, so a trace of any depth renders (no recursion limit),
and a parent chain that loops (only a hand-edited store has one) is broken
where it closes. Labels are inert text: see `tracekit._display`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from tracekit._display import error_text, inert, score_text
from tracekit._records import SpanRecord

__all__ = ["MAX_TEXT_DEPTH", "render_tree", "walk"]

# Deeper spans are drawn flat at this level, each labelled with its depth:
# 4 columns per level would make a 10,000-deep trace 40,000 columns wide.
MAX_TEXT_DEPTH = 32


def walk(spans: Iterable[SpanRecord]) -> Iterator[tuple[int, bool, SpanRecord]]:
    """Every span once, depth first, siblings in start order: `(depth, is_last_sibling, span)`.

    Roots (no parent, or a parent not among `spans`) have depth 0. A span
    caught in a parent loop starts a tree of its own.
    """
    ordered = sorted(spans, key=lambda s: s.start_ns)
    ids = {span.id for span in ordered}
    children: defaultdict[object, list[SpanRecord]] = defaultdict(list)
    roots: list[SpanRecord] = []
    for span in ordered:
        if span.parent_id in ids and span.parent_id != span.id:
            children[span.parent_id].append(span)
        else:
            roots.append(span)
    seen: set[int] = set()
    for top in (*roots, *ordered):  # then whatever a loop kept out of reach
        stack = [(0, True, top)]
        while stack:
            depth, last, span = stack.pop()
            if id(span) in seen:
                continue
            seen.add(id(span))
            yield depth, last, span
            kids = [kid for kid in children.get(span.id, ()) if id(kid) not in seen]
            stack.extend((depth + 1, index == 0, kid) for index, kid in enumerate(reversed(kids)))


def _label(span: SpanRecord) -> str:
    duration = span.duration_ms
    label = f"{inert(span.name)} [{inert(span.type, 40)}] " + (
        "running" if duration is None else f"{duration:.2f} ms"
    )
    if span.model:
        label += f" model={inert(span.model, 80)}"
    if isinstance(span.usage, dict) and isinstance(span.usage.get("total_tokens"), int):
        label += f" tokens={span.usage['total_tokens']}"
    if span.error_info is not None:
        label += f" ERROR {error_text(span.error_info)}"
    if isinstance(span.metadata, dict) and span.metadata.get("generator_completed") is False:
        label += " (not completed)"
    for score in span.feedback_scores:
        label += f" [{score_text(score, 80)}]"
    return label


def render_tree(spans: Iterable[SpanRecord]) -> str:
    """Every trace in `spans` as an indented tree, children in start order.

    Nesting deeper than `MAX_TEXT_DEPTH` is drawn flat at that level, each
    such span prefixed with `[depth N]`.
    """
    lines: list[str] = []
    lasts: list[bool] = []  # per drawn level: was that ancestor the last of its siblings
    for depth, last, span in walk(spans):
        if depth == 0:
            lines.append(f"trace {inert(span.trace_id)}")
            lines.append(_label(span))
            lasts = []
            continue
        level = min(depth, MAX_TEXT_DEPTH)
        del lasts[level - 1 :]
        prefix = "".join("    " if done else "│   " for done in lasts)
        marker = f"[depth {depth}] " if depth > MAX_TEXT_DEPTH else ""
        lines.append(prefix + ("└── " if last else "├── ") + marker + _label(span))
        lasts.append(last)
    return "\n".join(lines)
