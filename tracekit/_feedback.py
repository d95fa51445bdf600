"""Feedback scores: a named number (with an optional reason) on a span or a trace.

Scores come two ways. While a span runs, `update_current_span(feedback_scores=
[...])` / `update_current_trace(...)` keep them on the span and they leave with
it. Later, usually in another request once a user has rated the answer,
`log_feedback(trace_id, ...)` sends one on its own through the same export
pipeline, behind every span already produced (so a trace is written before
its late scores). As in Opik, a score with the same name on the same span or
trace replaces the earlier one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from time import time_ns
from typing import Any

from tracekit._context import active_span
from tracekit._pipeline import emit

__all__ = ["FeedbackScore", "LateFeedback", "feedback_scores", "finite_number", "log_feedback"]

_KEYS = ("name", "value", "reason", "category_name")
# Opik's FeedbackScoreDict also has `id`; Opik overwrites it with the span's or
# trace's own id when the score is given through update_current_*: so do we.
_IGNORED_KEYS = ("id",)


@dataclass(frozen=True, slots=True)
class FeedbackScore:
    """One score: `name`, a finite `value`, and optionally `reason` and `category_name`."""

    name: str
    value: float
    reason: str | None = None
    category_name: str | None = None
    # When it was given (Unix ns): of two scores with one name, the later one is kept.
    given_ns: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LateFeedback:
    """A score for a span or trace that may have ended long ago (`log_feedback`)."""

    trace_id: str
    span_id: str | None
    score: FeedbackScore
    project_name: str | None

    @property
    def name(self) -> str:  # what export logs name an item by
        return self.score.name


def finite_number(value: Any, label: str) -> float:
    """`value` as a float; anything but a finite int or float raises, naming `label`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{label}={value!r}: expected a number")
    try:
        number = float(value)
    except OverflowError:  # an int too big for a float is not a finite float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{label}={value!r}: expected a finite number")
    return number


def _optional_text(value: Any, key: str, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{where}: {key}={value!r}: expected a str or None")
    return value


def score(
    name: Any,
    value: Any,
    reason: Any = None,
    category_name: Any = None,
    where: str = "feedback score",
) -> FeedbackScore:
    """A checked `FeedbackScore`; a bad field raises naming it and what is accepted."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}: name={name!r}: expected a non-empty str")
    return FeedbackScore(
        name,
        finite_number(value, f"{where}: value"),
        _optional_text(reason, "reason", where),
        _optional_text(category_name, "category_name", where),
        time_ns(),
    )


def feedback_scores(given: Iterable[Mapping[str, Any]], where: str) -> list[FeedbackScore]:
    """The scores of a `feedback_scores=[{"name": ..., "value": ...}, ...]` argument, checked.

    Each item is a mapping with `name` and `value`, and optionally `reason`
    and `category_name` (Opik's `FeedbackScoreDict`: an `id` is ignored, the
    score goes to the span or trace updated). Anything else raises, naming
    the item and the accepted keys.
    """
    if isinstance(given, Mapping | str | bytes) or not isinstance(given, Iterable):
        raise TypeError(
            f"{where}(feedback_scores={given!r}): expected a list of dicts with "
            f"keys {', '.join(_KEYS)}"
        )
    checked = []
    for item in given:
        if not isinstance(item, Mapping):
            raise TypeError(
                f"{where}(feedback_scores=[..., {item!r}, ...]): each score is a dict with "
                f"keys {', '.join(_KEYS)}"
            )
        unknown = sorted(str(key) for key in item if key not in _KEYS and key not in _IGNORED_KEYS)
        if unknown:
            raise TypeError(
                f"{where}(feedback_scores=...): unknown key(s) {', '.join(unknown)} in "
                f"{item!r}; accepted: {', '.join(_KEYS)}"
            )
        if "name" not in item or "value" not in item:
            raise TypeError(f"{where}(feedback_scores=...): {item!r} needs both name and value")
        fields = {key: value for key, value in item.items() if key in _KEYS}
        checked.append(score(where=f"{where}(feedback_scores=...)", **fields))
    return checked


def _uuid_text(value: Any, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"log_feedback({argument}={value!r}): expected an id string")
    import uuid  # here, not at `import tracekit`: it loads `platform` (~3 ms)

    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ValueError(
            f"log_feedback({argument}={value!r}): not a span or trace id (a UUID string)"
        ) from None
    return str(parsed)  # the canonical form spans are recorded with, whatever was given


def _project_if_active(trace_id: str) -> str | None:
    """The project of `trace_id` when it is the active span's trace (a continued one too)."""
    current = active_span.get()
    if current is None or current.trace_id != trace_id:
        return None
    return (current._root or current).project_name


def log_feedback(
    trace_id: str,
    name: str,
    value: float,
    reason: str | None = None,
    span_id: str | None = None,
    *,
    category_name: str | None = None,
    project_name: str | None = None,
) -> None:
    """Score a trace (or, with `span_id`, one of its spans), now or long after it ended.

    The score is exported like a span, behind everything produced before
    it; one with the same `name` replaces the earlier score. `project_name`
    defaults to the project the trace was recorded in, when this process
    recorded it recently, else the configured project (Opik files scores
    by project). Bad arguments raise `TypeError`/`ValueError`.
    """
    checked = score(name, value, reason, category_name, where="log_feedback(...)")
    if project_name is not None and not isinstance(project_name, str):
        raise TypeError(f"log_feedback(project_name={project_name!r}): expected a str or None")
    trace_id = _uuid_text(trace_id, "trace_id")
    if project_name is None:
        project_name = _project_if_active(trace_id)
    emit(
        LateFeedback(
            trace_id=trace_id,
            span_id=None if span_id is None else _uuid_text(span_id, "span_id"),
            score=checked,
            project_name=project_name,
        )
    )
