"""Plain-text trace trees, for the console exporter, the demo and test messages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tracekit._records import SpanRecord

__all__ = ["render_tree"]


def _label(span: SpanRecord) -> str:
    duration = span.duration_ms
    label = f"{span.name} [{span.type}] " + (
        "running" if duration is None else f"{duration:.2f} ms"
    )
    if span.model:
        label += f" model={span.model}"
    if span.usage and isinstance(span.usage.get("total_tokens"), int):
        label += f" tokens={span.usage['total_tokens']}"
    if span.error_info is not None:
        label += f" ERROR {span.error_info['exception_type']}: {span.error_info['message']}"
    if span.metadata and span.metadata.get("generator_completed") is False:
        label += " (not completed)"
    return label


def render_tree(spans: Iterable[SpanRecord]) -> str:
    """Every trace in `spans` as an indented tree, children in start order."""
    spans = list(spans)
    ids = {span.id for span in spans}
    children: defaultdict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    lines: list[str] = []

    def walk(span: SpanRecord, prefix: str, is_last: bool, is_top: bool) -> None:
        branch = "" if is_top else ("└── " if is_last else "├── ")
        lines.append(prefix + branch + _label(span))
        kids = sorted(children.get(span.id, ()), key=lambda s: s.start_ns)
        deeper = prefix if is_top else prefix + ("    " if is_last else "│   ")
        for index, kid in enumerate(kids):
            walk(kid, deeper, index == len(kids) - 1, False)

    for root in sorted(children.get(None, ()), key=lambda s: s.start_ns):
        lines.append(f"trace {root.trace_id}")
        walk(root, "", True, True)
    return "\n".join(lines)
