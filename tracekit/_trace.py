"""`TraceRecord`: the trace a root span stands for, as Opik models it.

A trace takes its name, input, output and times from its root span, its
project, thread and tags from the root's context, and whatever
`update_current_trace()` set on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracekit._span import Span

__all__ = ["TraceRecord"]


@dataclass(frozen=True)
class TraceRecord:
    """One trace, derived from its root span when the root ends."""

    id: str
    name: str
    start_time: datetime
    end_time: datetime | None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    project_name: str | None = None
    thread_id: str | None = None
    error_info: dict[str, str] | None = None

    @classmethod
    def from_root(cls, root: Span) -> TraceRecord:
        """The trace of `root` (which must be a root span)."""
        updates = root.trace_updates
        tags = [*(root.tags or ()), *updates.get("tags", ())]
        metadata = {**(root.metadata or {}), **updates.get("metadata", {})} or None
        return cls(
            id=root.trace_id,
            name=updates.get("name", root.name),
            start_time=root.start_time,
            end_time=root.end_time,
            input=updates.get("input", root.input),
            output=updates.get("output", root.output),
            metadata=metadata,
            tags=list(dict.fromkeys(tags)),
            project_name=root.project_name,
            thread_id=updates.get("thread_id", root.thread_id),
            error_info=root.error_info,
        )
