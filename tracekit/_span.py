"""`Span`: one unit of traced work, with UUIDv7 ids and UTC times.

Creating and ending a span is the hot path of every traced call, so a span
stores raw values (nanosecond clocks, the exception object) and derives the
presentable ones (datetimes, `error_info`) only when they are read, usually
on an exporter's thread.
"""

from __future__ import annotations

import linecache
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from random import getrandbits
from time import time_ns
from types import TracebackType
from typing import Any, Literal, get_args

from tracekit import _hooks
from tracekit._context import context_defaults
from tracekit._feedback import FeedbackScore, feedback_scores, finite_number
from tracekit._pipeline import emit

__all__ = [
    "SPAN_TYPES",
    "Span",
    "SpanType",
    "format_uuid",
    "utc_datetime",
    "uuid7_int",
]

SpanType = Literal["general", "llm", "tool", "guardrail"]
SPAN_TYPES: tuple[str, ...] = get_args(SpanType)

# Names a call's raw arguments (args, kwargs) when the span's `input` is first read.
CallBinder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]

_RAND_B_MASK = (1 << 62) - 1
# Where a UUIDv7 keeps its 74 random bits: 12 after the version, 62 after the variant.
_RANDOM_BITS = ((1 << 12) - 1) << 64 | _RAND_B_MASK
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
# A root's trace id is its span id with the random bits flipped: still a valid
# UUIDv7 with the same timestamp, distinct from every span id, and free to make.
_TRACE_ID_FLIP = _RAND_B_MASK


def uuid7_int(unix_ns: int) -> int:
    """A UUIDv7 for `unix_ns`, as an int: Opik rejects other ids and checks the timestamp.

    Layout (RFC 9562): 48 bits of Unix milliseconds, version 7, 12 random
    bits, variant 0b10, 62 random bits. Formatting costs more than making
    it, so spans format their ids only when someone reads them.
    """
    return ((unix_ns // 1_000_000) << 80) | _VERSION_AND_VARIANT | (getrandbits(76) & _RANDOM_BITS)


def format_uuid(value: int) -> str:
    """The canonical 8-4-4-4-12 text of a 128-bit id."""
    h = value.to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_datetime(unix_ns: int) -> datetime:
    """The timezone-aware UTC datetime of a Unix time in nanoseconds (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=unix_ns // 1000)


# How much of an exception a span keeps: chained causes, the last frames per
# exception, and the formatted traceback's length. An exception that crosses
# N tracked calls is kept by N spans: bounded frames keep that linear in N.
_MAX_CHAIN = 5
_MAX_FRAMES = 50
_MAX_MESSAGE = 100_000
_MAX_TRACEBACK = 20_000


class Failure:
    """What a span keeps of the exception that left it: no frames, no locals.

    Holding the exception would hold its traceback's frames, and with them
    every local of every frame, until the span is exported. So the hot path
    keeps only names, the message and the code locations of the last
    `_MAX_FRAMES` frames (a few µs), and the traceback text is formatted
    later, on the export thread, and cut to `_MAX_TRACEBACK` characters.
    """

    __slots__ = ("chain",)

    def __init__(self, exc: BaseException) -> None:
        # (type name, message, [(file, line, function)], how it links to the
        # next, how many earlier frames were left out)
        self.chain: list[tuple[str, str | _LaterMessage, list[tuple[str, int, str]], str, int]] = []
        seen: set[int] = set()
        current: BaseException | None = exc
        link = ""
        while current is not None and id(current) not in seen and len(self.chain) < _MAX_CHAIN:
            seen.add(id(current))
            last: deque[TracebackType] = deque(maxlen=_MAX_FRAMES)
            tb = current.__traceback__
            count = 0
            while tb is not None:
                last.append(tb)
                count += 1
                tb = tb.tb_next
            frames = [
                (tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name)
                for tb in last
            ]
            del last
            name = type(current).__name__
            self.chain.append((name, _message(current), frames, link, count - len(frames)))
            if current.__cause__ is not None:
                current, link = current.__cause__, _CAUSE
            elif current.__context__ is not None and not current.__suppress_context__:
                current, link = current.__context__, _CONTEXT
            else:
                current = None

    def describe(self) -> dict[str, str]:
        """Opik's `error_info`: `exception_type`, `message` and `traceback`."""
        chain = [
            (name, text.text() if isinstance(text, _LaterMessage) else text, frames, link, omitted)
            for name, text, frames, link, omitted in self.chain
        ]
        type_name, message = chain[0][0], chain[0][1]
        parts: list[str] = []
        for name, text, frames, link, omitted in reversed(chain):
            lines = ["Traceback (most recent call last):\n"] if frames else []
            if omitted:
                lines.append(f"  ...[{omitted} earlier frames omitted]\n")
            for filename, lineno, function in frames:
                lines.append(f'  File "{filename}", line {lineno}, in {function}\n')
                source = linecache.getline(filename, lineno).strip()
                if source:
                    lines.append(f"    {source}\n")
            lines.append(f"{name}: {text}\n" if text else f"{name}\n")
            parts.append("".join(lines))
            if link:
                parts.append(link)
        text = "".join(parts)
        # Not cut here: secrets are scrubbed from the whole text first, then
        # `records` keeps its end (see `_records._error_info`).
        return {"exception_type": type_name, "message": message, "traceback": text}


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


_SLOT_WRAPPER = type(BaseException.__str__)  # a __str__ written in C


class _LaterMessage:
    """An exception's message, made on the export thread from a frameless copy.

    A `__str__` written in Python is user code: on the traced call it could
    be slow or hang, and keeping the exception itself would keep its frames.
    """

    __slots__ = ("_copy",)

    def __init__(self, copy: BaseException) -> None:
        self._copy = copy

    def text(self) -> str:
        return _text_of(self._copy)


def _text_of(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"
    # A ceiling until the export thread applies max_string_length.
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE]


def _message(exc: BaseException) -> str | _LaterMessage:
    kind = type(exc)
    if type(kind.__str__) is _SLOT_WRAPPER and all(type(a) in (str, int) for a in exc.args):
        return _text_of(exc)  # C code over plain values: cheap, and runs nothing of the user's
    try:
        copy = BaseException.__new__(kind)
        copy.args = exc.args
        attributes = getattr(exc, "__dict__", None)
        if attributes:
            copy.__dict__.update(attributes)
    except Exception:
        return f"<unprintable {kind.__name__}>"
    return _LaterMessage(copy)


class GivenError:
    """An `error_info` set by hand (`update(error_info=...)`), kept as given."""

    __slots__ = ("info",)

    def __init__(self, info: Mapping[str, Any]) -> None:
        if not isinstance(info, Mapping):
            raise TypeError(
                f"error_info={info!r}: expected a mapping with exception_type, "
                "and optionally message and traceback"
            )
        exception_type = info.get("exception_type")
        if not isinstance(exception_type, str) or not exception_type:
            raise ValueError(
                f"error_info={info!r}: exception_type must be a non-empty string "
                "(message and traceback are optional strings)"
            )
        self.info = {
            "exception_type": exception_type,
            "message": str(info.get("message") or ""),
            "traceback": str(info.get("traceback") or ""),
        }

    def describe(self) -> dict[str, str]:
        return dict(self.info)


_checked_scores = feedback_scores  # the parameter of `Span.update` hides the function


def _with_scores(
    earlier: dict[str, FeedbackScore] | None, added: list[FeedbackScore]
) -> dict[str, FeedbackScore]:
    """`earlier` (changed in place) then `added`, a later score replacing one of its name."""
    scores = {} if earlier is None else earlier
    for score in added:
        scores.pop(score.name, None)  # to the end: the order they were given
        scores[score.name] = score
    return scores


class Span:
    """One traced call or block. Read its fields; change them with `update()`.

    A `Span` has `id` and `trace_id`, so LiteLLM accepts it as
    `metadata["opik"]["current_span_data"]` as it is.
    """

    __slots__ = (
        "_args",
        "_binder",
        "_end_ns",
        "_exception",
        "_feedback",
        "_foreign",
        "_id",
        "_id_int",
        "_input",
        "_kwargs",
        "_output_fixed",
        "_parent",
        "_root",
        "_start_ns",
        "_trace_base",
        "_trace_id",
        "_trace_updates",
        "metadata",
        "model",
        "name",
        "output",
        "project_name",
        "provider",
        "tags",
        "thread_id",
        "total_cost",
        "type",
        "usage",
    )

    name: str
    type: SpanType
    output: Any
    metadata: dict[str, Any] | None
    tags: list[str] | None
    project_name: str | None
    thread_id: str | None
    usage: dict[str, Any] | None
    model: str | None
    provider: str | None
    total_cost: float | None
    _exception: Failure | GivenError | None
    _feedback: dict[str, FeedbackScore] | None
    _trace_base: dict[str, Any] | None
    _trace_updates: dict[str, Any] | None
    _id: str | None
    _binder: CallBinder | None
    _args: tuple[Any, ...] | None
    _kwargs: dict[str, Any] | None

    def __init__(
        self,
        name: str,
        type: SpanType = "general",
        parent: Span | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        project_name: str | None = None,
        input: Any = None,
        binder: CallBinder | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        now = time_ns()
        self._start_ns = now
        self._end_ns: int | None = None
        self._foreign = False
        # A UUIDv7 (see uuid7_int), made here: a call costs ~60 ns on every span.
        self._id_int = (
            ((now // 1_000_000) << 80) | _VERSION_AND_VARIANT | (getrandbits(76) & _RANDOM_BITS)
        )
        self._parent = parent
        self.name = name
        self.type = type
        self._input = input
        # A tracked call's arguments, named on the export thread (see `input`).
        # Three slots, not a tuple: a queued span is then one object the
        # cyclic GC walks, not two.
        self._binder = binder
        self._args = args
        self._kwargs = kwargs
        self.output = None
        self._output_fixed = False  # set with update(output=...): the return value is not
        # Fields most spans never set. Set here (~0.1 µs in all): a slot read
        # before it is set costs ~0.8 µs (an AttributeError), and the export
        # thread reads every one of them.
        self._exception = self._feedback = self._trace_base = self._trace_updates = None
        self._id = self.usage = self.model = self.provider = self.total_cost = None
        defaults = context_defaults.get()
        if _hooks.choose_parent:
            for choose in _hooks.choose_parent:
                parent = choose(parent)
            self._parent = parent
        if parent is None:
            self._root: Span | None = None  # not `self`: a cycle only the GC would free
            self._trace_id: str | None = None
            if project_name is None and defaults is not None:
                project_name = defaults.project_name
            self.project_name = project_name
            self.thread_id = defaults.thread_id if defaults is not None else None
        else:
            # Every span of a trace lives in the trace's project and thread.
            self._root = parent._root or parent
            self.project_name = parent.project_name
            self.thread_id = parent.thread_id
        if defaults is None:
            self.tags = list(tags) if tags else None
            self.metadata = dict(metadata) if metadata else None
        else:
            self.tags = [*defaults.tags, *(tags or ())] or None
            self.metadata = {**defaults.metadata, **(metadata or {})} or None

    @classmethod
    def foreign(
        cls, span_id: str, trace_id: str, project_name: str | None, thread_id: str | None
    ) -> Span:
        """A stand-in for another tracer's active span, to parent tracekit spans.

        It is never ended or exported: its trace belongs to the other tracer.
        """
        stand_in = cls.__new__(cls)  # not __init__: that would ask the hooks for a parent
        for slot in cls.__slots__:
            setattr(stand_in, slot, None)
        stand_in._foreign = True
        stand_in._start_ns = time_ns()
        stand_in._root = None
        stand_in._id = span_id
        stand_in._trace_id = trace_id
        stand_in.name = "foreign"
        stand_in.type = "general"
        stand_in.project_name = project_name
        stand_in.thread_id = thread_id
        return stand_in

    @property
    def id(self) -> str:
        """This span's id, a UUIDv7 string."""
        text = self._id
        if text is None:
            text = self._id = format_uuid(self._id_int)
        return text

    @property
    def trace_id(self) -> str:
        """The id of the trace this span belongs to (a UUIDv7 string, not a span's id)."""
        root = self._root or self
        text = root._trace_id
        if text is None:
            text = root._trace_id = format_uuid(root._id_int ^ _TRACE_ID_FLIP)
        return text

    @property
    def input(self) -> Any:
        """What the span was called with: arguments by parameter name for tracked calls."""
        # Read in the reverse of the order they are cleared in (binder first):
        # a binder still set means the arguments read before it are the call's,
        # even while another thread names them too.
        kwargs, args, binder = self._kwargs, self._args, self._binder
        if binder is not None:
            self._input = binder(args or (), kwargs or {})
            self._binder = self._args = self._kwargs = None
        return self._input

    @input.setter
    def input(self, value: Any) -> None:
        self._binder = self._args = self._kwargs = None
        self._input = value

    @property
    def parent_id(self) -> str | None:
        """The id of the span this one was created under; None for a root."""
        return None if self._parent is None else self._parent.id

    @property
    def start_time(self) -> datetime:
        """When the span started (timezone-aware UTC)."""
        return utc_datetime(self._start_ns)

    @property
    def end_time(self) -> datetime | None:
        """When the span ended (timezone-aware UTC), or None while it runs."""
        return None if self._end_ns is None else utc_datetime(self._end_ns)

    @property
    def error_info(self) -> dict[str, str] | None:
        """None, or `exception_type`, `message` and `traceback` of the error it raised."""
        if self._exception is None:
            return None
        return self._exception.describe()

    @property
    def is_root(self) -> bool:
        """True for the first span of a trace."""
        return self._parent is None

    @property
    def trace_updates(self) -> Mapping[str, Any]:
        """Trace-level fields set with `update_current_trace()` in this trace."""
        return (self._root or self)._trace_updates or {}

    def update(
        self,
        *,
        name: str | None = None,
        input: Any = None,
        output: Any = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        usage: Mapping[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
        total_cost: float | None = None,
        error_info: Mapping[str, Any] | None = None,
        feedback_scores: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        """Set the given fields; `metadata` merges into and `tags` extend what is there.

        An `input` mapping merges into the captured arguments (anything else
        replaces them); an `output` set here is kept over the return value.
        On a root span this changes the span only: its trace keeps the fields
        the span was created with (set those with `update_trace`), as in Opik.
        `error_info` (`exception_type`, optional `message` and `traceback`)
        marks the span failed without an exception; one that leaves the call
        later replaces it. `feedback_scores` (dicts with `name`, `value`, and
        optionally `reason`, `category_name`) are added; a score named like one
        already there replaces it.
        """
        given_error = None if error_info is None else GivenError(error_info)
        scores = None if feedback_scores is None else _checked_scores(feedback_scores, "update")
        if self._parent is None and self._trace_base is None:
            self._trace_base = {
                "name": self.name,
                "input": self.input,
                "tags": self.tags,
                "metadata": self.metadata,
            }
        if name is not None:
            self.name = name
        if input is not None:
            current = self.input
            if isinstance(input, Mapping) and isinstance(current, Mapping):
                self.input = {**current, **input}  # added to the captured arguments
            else:
                self.input = input
        if output is not None:
            self.output = output
            self._output_fixed = True
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata={metadata!r}: expected a mapping (dict)")
        if usage is not None and not isinstance(usage, Mapping):
            raise TypeError(f"usage={usage!r}: expected a mapping (dict) of token counts")
        if metadata:
            self.metadata = {**(self.metadata or {}), **metadata}
        if tags:
            self.tags = [*(self.tags or ()), *tags]
        if usage is not None:
            self.usage = dict(usage)
        if model is not None:
            self.model = model
        if provider is not None:
            self.provider = provider
        if given_error is not None:
            self._exception = given_error
        if scores:
            self._feedback = _with_scores(self._feedback, scores)
        if total_cost is not None:
            self.total_cost = finite_number(total_cost, "total_cost")

    @property
    def feedback_scores(self) -> list[FeedbackScore]:
        """Scores given to this span while it ran (`update(feedback_scores=...)`)."""
        feedback = self._feedback
        return [] if feedback is None else list(feedback.values())

    def keep_return_for_trace(self, value: Any) -> None:
        """The call returned `value` while its span's output was set by hand.

        The trace's output is still the return value, as in Opik.
        """
        if self._parent is None:
            base = self._trace_base
            if base is not None:
                base["output"] = value

    @property
    def trace_base(self) -> Mapping[str, Any]:
        """A root span's fields as they were before `update()` changed them (for its trace)."""
        root = self._root or self
        return root._trace_base or {}

    def update_trace(self, **fields: Any) -> None:
        """Record trace-level fields (see `tracekit.update_current_trace`) on the root."""
        root = self._root or self
        updates = dict(root._trace_updates or {})
        for key, value in fields.items():
            if value is None:
                continue
            if key == "metadata":
                value = {**updates.get("metadata", {}), **value}
            elif key == "tags":
                value = [*updates.get("tags", ()), *value]
            elif key == "feedback_scores":
                value = _with_scores(updates.get("feedback_scores"), value)
            updates[key] = value
        root._trace_updates = updates

    def end(self) -> bool:
        """End the span now and hand it on; False when it had already ended."""
        if self._end_ns is not None:
            return False
        self._end_ns = time_ns()
        emit(self)
        return True

    def fail(self, exc: BaseException) -> bool:
        """End the span because `exc` left it.

        An `Exception` is the span's error; a bare `BaseException`
        (cancellation, `GeneratorExit`, `KeyboardInterrupt`) only ends it,
        noting what interrupted it in the metadata.
        """
        if self._end_ns is not None:
            return False
        if isinstance(exc, Exception):
            self._exception = Failure(exc)
        else:
            self.metadata = {**(self.metadata or {}), "interrupted_by": type(exc).__name__}
        return self.end()

    def __repr__(self) -> str:
        return f"<Span {self.name!r} type={self.type} id={self.id} parent={self.parent_id}>"
