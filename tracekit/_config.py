"""`configure()`, the environment, and the one active export pipeline.

The default pipeline is set up on import but starts nothing until the first
span ends; the exporter itself (and `opik`, which takes a while to import) is
created on the export thread. Precedence: arguments to `configure()`, then
`TRACEKIT_EXPORTER` / `TRACEKIT_DB`, then the "auto" choice.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from tracekit import _hooks
from tracekit._capture import DEFAULT_REDACT, Limits, Redactor
from tracekit._log import log_once
from tracekit._pipeline import add_processor, remove_processor
from tracekit.exporters._base import Exporter, NoneExporter
from tracekit.exporters._batch import BatchProcessor, ExportOptions, Stats

__all__ = ["EXPORTERS", "configure", "disabled", "flush", "stats"]

EXPORTERS = ("auto", "opik", "sqlite", "console", "none")
DEFAULT_DB = Path(".tracekit") / "traces.db"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


# Read once, at import: with it set, @track returns the function undecorated.
disabled: bool = _env_flag("TRACEKIT_DISABLED")


def opik_is_configured() -> bool:
    """What "auto" asks: would the opik SDK talk to a server?"""
    return bool(
        os.environ.get("OPIK_URL_OVERRIDE")
        or os.environ.get("OPIK_API_KEY")
        or (Path.home() / ".opik.config").exists()
    )


def _resolve_exporter_name(requested: str) -> str:
    if requested != "auto":
        return requested
    from_env = os.environ.get("TRACEKIT_EXPORTER", "").strip().lower()
    if from_env and from_env != "auto":
        _check_exporter_name(from_env, source="TRACEKIT_EXPORTER")
        return from_env
    return "opik" if opik_is_configured() else "sqlite"


def _check_exporter_name(name: object, source: str = "configure(exporter=...)") -> None:
    if name not in EXPORTERS:
        raise ValueError(
            f"{source}: unknown exporter {name!r}; expected one of "
            + ", ".join(repr(e) for e in EXPORTERS)
            + " or an object with export(), flush() and shutdown()"
        )


def _exporter_factory(name: str, db_path: Path, request_timeout: float) -> Callable[[], Exporter]:
    """A function that builds the exporter, called on the export thread."""
    if name == "sqlite":
        from tracekit.exporters._sqlite import SQLiteExporter

        return lambda: SQLiteExporter(db_path)
    if name == "console":
        from tracekit.exporters._console import ConsoleExporter

        return ConsoleExporter
    if name == "opik":

        def make_opik() -> Exporter:
            from tracekit.exporters._opik import OpikExporter  # imports opik: seconds

            return OpikExporter(request_timeout)

        return make_opik
    return NoneExporter


def _check_positive(field: str, value: object, whole: bool) -> None:
    accepted = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, accepted) or value <= 0:
        kind = "int" if whole else "number"
        raise TypeError(f"configure({field}={value!r}): expected a positive {kind}")


class _Pipeline:
    """The processor currently installed, swapped whole by `configure()`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processor: BatchProcessor | None = None
        self.exporter_name = "none"
        self.exit_timeout = 5.0
        self.project_name: str | None = None


_pipeline = _Pipeline()


def configure(
    *,
    exporter: str | Exporter = "auto",
    project_name: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    redact: Iterable[str] | None = None,
    max_queue: int = 10_000,
    batch_size: int = 500,
    flush_interval: float = 0.5,
    exit_timeout: float = 5.0,
    request_timeout: float = 10.0,
    max_string_length: int = 10_000,
    max_collection_items: int = 1_000,
    max_depth: int = 20,
) -> None:
    """Choose where spans go and how they are captured; replaces the previous setup.

    `exporter`: "auto" (Opik when configured, else SQLite), "opik", "sqlite",
    "console", "none", or an `Exporter` object. `db_path` overrides
    `TRACEKIT_DB` and `.tracekit/traces.db`. `redact` adds key-name patterns
    (globs such as "*_secret") to the built-in ones. What the previous setup
    still held is flushed first, waiting at most `exit_timeout` seconds.
    """
    if isinstance(exporter, str) or not isinstance(exporter, Exporter):
        _check_exporter_name(exporter)
    if project_name is not None and not isinstance(project_name, str):
        raise TypeError(f"configure(project_name={project_name!r}): expected a str or None")
    if db_path is not None and not isinstance(db_path, str | os.PathLike):
        raise TypeError(f"configure(db_path={db_path!r}): expected a path (str or Path)")
    if redact is not None and (
        isinstance(redact, str) or not all(isinstance(p, str) for p in redact)
    ):
        raise TypeError(f"configure(redact={redact!r}): expected a list of key-name patterns")
    numbers = {
        "max_queue": max_queue,
        "batch_size": batch_size,
        "max_string_length": max_string_length,
        "max_collection_items": max_collection_items,
        "max_depth": max_depth,
        "flush_interval": flush_interval,
        "exit_timeout": exit_timeout,
        "request_timeout": request_timeout,
    }
    for field, value in numbers.items():
        _check_positive(field, value, whole=not field.endswith(("interval", "timeout")))

    path = Path(db_path or os.environ.get("TRACEKIT_DB") or DEFAULT_DB)
    if isinstance(exporter, str):
        name = _resolve_exporter_name(exporter)
        make_exporter = _exporter_factory(name, path, float(request_timeout))
    else:
        name = type(exporter).__name__
        make_exporter = lambda: exporter  # noqa: E731
    options = ExportOptions(
        max_queue=max_queue,
        batch_size=batch_size,
        flush_interval=float(flush_interval),
        project_name=project_name,
        limits=Limits(max_string_length, max_collection_items, max_depth),
        redactor=Redactor((*DEFAULT_REDACT, *(redact or ()))),
    )
    # "none" queues nothing: spans still reach tracekit.testing.capture().
    processor = None if name == "none" else BatchProcessor(make_exporter, options)
    _install(processor, name, float(exit_timeout))


def _install(processor: BatchProcessor | None, exporter_name: str, exit_timeout: float) -> None:
    """Make `processor` the export pipeline (None: spans are not exported at all)."""
    with _pipeline.lock:
        previous = _pipeline.processor
        _pipeline.processor = processor
        _pipeline.exporter_name = exporter_name
        _pipeline.exit_timeout = exit_timeout
        _pipeline.project_name = None if processor is None else processor.project_name
        if processor is not None:
            add_processor(processor)
        if previous is not None:
            remove_processor(previous)
    if previous is not None:
        previous.shutdown(exit_timeout)


def _run_before_flush(timeout: float) -> None:
    for drain in list(_hooks.before_flush):
        try:
            drain(timeout)
        except Exception:
            log_once(f"before_flush:{drain!r}", "tracekit: flushing an integration failed")


def flush(timeout: float = 5.0) -> bool:
    """Wait up to `timeout` seconds for queued spans to be exported.

    First pushes out what instrumented libraries still hold (LiteLLM's pending
    callbacks). True when everything queued before the call was delivered;
    False on a timeout or when spans were dropped or failed meanwhile (see
    `stats()`).
    """
    _run_before_flush(timeout)
    processor = _pipeline.processor
    return True if processor is None else processor.flush(timeout)


def default_project() -> str | None:
    """The project configured with `configure(project_name=...)`, if any."""
    return _pipeline.project_name


def stats() -> dict[str, int]:
    """Span counts of the current export setup: queued, exported, dropped, failed."""
    processor = _pipeline.processor
    counts = processor.stats() if processor is not None else Stats(0, 0, 0, 0)
    return {
        "queued": counts.queued,
        "exported": counts.exported,
        "dropped": counts.dropped,
        "failed": counts.failed,
    }


def exporter_name() -> str:
    """The exporter in use ("sqlite", "opik", ... or a custom exporter's class name)."""
    return _pipeline.exporter_name


# Called at exit after integrations were drained, before the final flush
# (e.g. to log calls that will now never finish).
at_exit: list[Callable[[float], None]] = []


@atexit.register
def _flush_at_exit() -> None:
    timeout = _pipeline.exit_timeout
    _run_before_flush(timeout)
    for hook in list(at_exit):
        try:
            hook(timeout)
        except Exception:
            log_once(f"at_exit:{hook!r}", "tracekit: an exit hook failed")
    processor = _pipeline.processor
    if processor is not None:
        processor.shutdown(timeout)


def _configure_from_environment() -> None:
    if not disabled:
        configure()


_configure_from_environment()
