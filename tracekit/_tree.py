"""Plain-text trace trees, for the demo, the console and test failure messages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tracekit._span import Span

__all__ = ["render_tree"]


def _duration_ms(span: Span) -> str:
    if span._end_ns is None:
        return "running"
    return f"{(span._end_ns - span._start_ns) / 1e6:.2f} ms"


def _label(span: Span) -> str:
    label = f"{span.name} [{span.type}] {_duration_ms(span)}"
    if span.model:
        label += f" model={span.model}"
    info = span.error_info
    if info is not None:
        label += f" ERROR {info['exception_type']}: {info['message']}"
    if span.metadata and span.metadata.get("generator_completed") is False:
        label += " (not completed)"
    return label


def render_tree(spans: Iterable[Span]) -> str:
    """Every trace in `spans` as an indented tree, children in start order."""
    spans = list(spans)
    ids = {span.id for span in spans}
    children: defaultdict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        parent_id = span.parent_id if span.parent_id in ids else None
        children[parent_id].append(span)
    lines: list[str] = []

    def walk(span: Span, prefix: str, is_last: bool, is_top: bool) -> None:
        branch = "" if is_top else ("└── " if is_last else "├── ")
        lines.append(prefix + branch + _label(span))
        kids = sorted(children.get(span.id, ()), key=lambda s: s._start_ns)
        deeper = prefix if is_top else prefix + ("    " if is_last else "│   ")
        for index, kid in enumerate(kids):
            walk(kid, deeper, index == len(kids) - 1, False)

    for root in sorted(children.get(None, ()), key=lambda s: s._start_ns):
        lines.append(f"trace {root.trace_id}")
        walk(root, "", True, True)
    return "\n".join(lines)
