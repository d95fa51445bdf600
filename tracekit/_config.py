"""`configure()`, the environment, and the one active export pipeline.

The default pipeline is set up on import but starts nothing until the first
span ends; the exporter itself (and `opik`, which takes a while to import) is
created on the export thread. Precedence: arguments to `configure()`, then
`TRACEKIT_EXPORTER` / `TRACEKIT_DB`, then the "auto" choice.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from tracekit import _hooks, _inputs, _shutdown
from tracekit import _pipeline as _pipeline_module
from tracekit._capture import DEFAULT_REDACT, Limits, Redactor
from tracekit._extras import installed, require
from tracekit._forks import import_module
from tracekit._log import log_once, logger
from tracekit._pipeline import add_processor, remove_processor
from tracekit.exporters._base import Exporter, NoneExporter
from tracekit.exporters._batch import BatchProcessor, ExportOptions, Stats

__all__ = ["EXPORTERS", "configure", "disabled", "flush", "set_tracing_active", "stats"]

EXPORTERS = ("auto", "opik", "sqlite", "console", "none")
DEFAULT_DB = Path(".tracekit") / "traces.db"

_TRUE = ("1", "true", "yes", "on", "y")
_FALSE = ("0", "false", "no", "off", "n", "")


_said: set[str] = set()


def environment_problem(message: str) -> None:
    """Say once, on one line, that an environment value was not understood.

    A typo in a deployment's environment must never stop the application:
    the caller goes on with the documented fallback.
    """
    key = message.split(" is ")[0]  # the variable and its value: said once, whatever follows
    if key in _said:
        return
    _said.add(key)
    if logger.hasHandlers() and logger.getEffectiveLevel() <= 30:
        logger.warning("tracekit: %s", message)
    else:
        sys.stderr.write(f"tracekit: {message}\n")


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        accepted = ", ".join(repr(v) for v in (*_TRUE, *_FALSE[:-1]))
        environment_problem(
            f"{name}={raw!r} is not understood (accepted: {accepted}); tracing stays on"
        )
    return False


# Read once, at import: with it set, @track returns the function undecorated.
disabled: bool = _env_flag("TRACEKIT_DISABLED")


def opik_is_configured() -> bool:
    """What "auto" asks: would the opik SDK talk to a server?"""
    return bool(
        os.environ.get("OPIK_URL_OVERRIDE")
        or os.environ.get("OPIK_API_KEY")
        or (Path.home() / ".opik.config").exists()
    )


def _opik_installed(asked_by: str) -> bool:
    """Is opik installed? Opik asked for by the environment without it: said once, and
    spans go to the local SQLite file instead."""
    if installed("opik"):
        return True
    log_once(
        "config:no-opik",
        "tracekit: %s asks for Opik but the opik package is not installed: spans go to the "
        "local SQLite file; install it with: pip install 'tracekit[opik]'",
        asked_by,
        exc_info=False,
    )
    return False


def _opik_configuration() -> str:
    """What makes "auto" choose Opik, named for a message."""
    for name in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY"):
        if os.environ.get(name):
            return name
    return "~/.opik.config"


def _resolve_exporter_name(requested: str) -> str:
    if requested != "auto":
        return requested
    raw = os.environ.get("TRACEKIT_EXPORTER", "")
    from_env = raw.strip().lower()
    configured = opik_is_configured() and _opik_installed(_opik_configuration())
    fallback = "opik" if configured else "sqlite"
    if from_env and from_env != "auto":
        if from_env == "opik" and not _opik_installed("TRACEKIT_EXPORTER=opik"):
            return "sqlite"
        if from_env in EXPORTERS:
            return from_env
        environment_problem(
            f"TRACEKIT_EXPORTER={raw!r} is not an exporter (accepted: "
            + ", ".join(repr(e) for e in EXPORTERS)
            + f"); using the automatic choice, {fallback!r}"
        )
    return fallback


def _sends_to_opik(exporter: Exporter) -> bool:
    """Is `exporter` tracekit's Opik exporter (or made from it)? Checked without importing opik."""
    return any(cls.__module__ == "tracekit.exporters._opik" for cls in type(exporter).__mro__)


def _check_exporter_name(name: object) -> None:
    if name not in EXPORTERS:
        raise ValueError(
            f"configure(exporter=...): unknown exporter {name!r}; expected one of "
            + ", ".join(repr(e) for e in EXPORTERS)
            + " or an object with export(), flush() and shutdown()"
        )


def _exporter_factory(name: str, db_path: Path, request_timeout: float) -> Callable[[], Exporter]:
    """A function that builds the exporter, called on the export thread."""
    if name == "sqlite":

        def make_sqlite() -> Exporter:
            module = import_module("tracekit.exporters._sqlite")  # and sqlite3, on first export
            exporter: Exporter = module.SQLiteExporter(db_path)
            return exporter

        return make_sqlite
    if name == "console":
        from tracekit.exporters._console import ConsoleExporter

        return ConsoleExporter
    if name == "opik":

        def make_opik() -> Exporter:
            module = import_module("tracekit.exporters._opik")  # imports opik: seconds
            exporter: Exporter = module.OpikExporter(request_timeout)
            return exporter

        return make_opik
    return NoneExporter


# The accepted range of every numeric setting: (smallest, largest, whole number?).
_RANGES: dict[str, tuple[float, float, bool]] = {
    "max_queue": (1, 10_000_000, True),
    "batch_size": (1, 100_000, True),
    "max_buffer_bytes": (64 * 1024, 1 << 40, True),
    "max_string_length": (1, 100_000_000, True),
    "max_collection_items": (1, 10_000_000, True),
    "max_depth": (1, 1_000, True),
    "max_span_bytes": (1_024, 1 << 30, True),
    "flush_interval": (0.001, 3600, False),
    "exit_timeout": (0.001, 3600, False),
    "request_timeout": (0.001, 3600, False),
}


def _number_text(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:g}"


def _check_number(field: str, value: object) -> None:
    low, high, whole = _RANGES[field]
    accepted = int if whole else int | float
    expected = (
        f"{'an int' if whole else 'a number'} from {_number_text(low)} to {_number_text(high)}"
    )
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise TypeError(f"configure({field}={value!r}): expected {expected}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"configure({field}={value!r}): expected {expected}")


class _Pipeline:
    """The processor currently installed, swapped whole by `configure()`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processor: BatchProcessor | None = None
        self.exporter_name = "none"
        self.exit_timeout = 5.0
        self.project_name: str | None = None
        self.litellm_proxies: tuple[str, ...] = _proxies_from_environment()


_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=256)
def _canonical_url(url: str) -> str | None:
    """`url` as proxies are compared, or None if it is not an http(s) base URL.

    Scheme and host in lower case, the port always given, no trailing `/`
    nor `/v1` (an OpenAI client's base URL often ends in it; the proxy
    answers both): `http://LocalHost:4000/v1/` → `http://localhost:4000`.
    """
    if any(c.isspace() or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = _canonical_host(parts.hostname)
    if host is None:
        return None
    path = quote(unquote(parts.path), safe="/").rstrip("/").removesuffix("/v1")
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}{path}"


def _canonical_host(host: str) -> str | None:
    """An IP address in its short form, a name in lower-case ASCII (IDNA, as httpx sends it)."""
    import ipaddress  # only with proxies configured: not on `import tracekit`

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            return host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _without_password(url: str) -> str:
    """`url` fit to print: a password in it is replaced by `***`."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url
    return url.replace(f":{password}@", ":***@") if password else url


def _proxy_url_problem(url: object) -> str | None:
    """Why `url` is not a proxy's base URL, or None when it is one."""
    if not isinstance(url, str):
        return "not a str"
    if _canonical_url(url) is None:
        return "not an http:// or https:// URL with a host (and a valid port)"
    return None


def _checked_proxies(urls: Iterable[str]) -> tuple[str, ...]:
    if isinstance(urls, str) or not isinstance(urls, Iterable):
        shown = _without_password(urls) if isinstance(urls, str) else urls
        raise TypeError(
            f"configure(litellm_proxies={shown!r}): expected a list of base URLs "
            "such as ['http://127.0.0.1:4000']"
        )
    checked = []
    for url in urls:
        problem = _proxy_url_problem(url)
        if problem is not None:
            shown = _without_password(url) if isinstance(url, str) else url
            raise ValueError(
                f"configure(litellm_proxies=[..., {shown!r}, ...]): {problem}; "
                "expected base URLs such as 'http://127.0.0.1:4000'"
            )
        checked.append(str(_canonical_url(url)))
    return tuple(checked)


def _proxies_from_environment() -> tuple[str, ...]:
    """TRACEKIT_LITELLM_PROXIES, comma-separated; a bad entry is said once and left out."""
    urls = []
    for raw in os.environ.get("TRACEKIT_LITELLM_PROXIES", "").split(","):
        url = raw.strip()
        if not url:
            continue
        problem = _proxy_url_problem(url)
        if problem is None:
            urls.append(str(_canonical_url(url)))
        else:
            environment_problem(
                f"TRACEKIT_LITELLM_PROXIES entry {_without_password(url)!r} is {problem}; "
                "it is left out"
            )
    return tuple(urls)


def is_litellm_proxy(base_url: str) -> bool:
    """Does `base_url` belong to one of the configured LiteLLM proxies?

    Compared as `_canonical_url`s: same scheme, host and port, and the
    listed path a prefix of the client's (`/v1` or not on either side).
    """
    if not _pipeline.litellm_proxies:
        return False
    url = _canonical_url(base_url)
    if url is None:
        return False
    return any(url == p or url.startswith(p + "/") for p in _pipeline.litellm_proxies)


_pipeline = _Pipeline()


def configure(
    *,
    exporter: str | Exporter = "auto",
    project_name: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    redact: Iterable[str] | None = None,
    secrets: Iterable[str] | None = None,
    max_queue: int = 10_000,
    batch_size: int = 500,
    max_buffer_bytes: int = 64 * 1024 * 1024,
    flush_interval: float = 0.5,
    exit_timeout: float = 5.0,
    request_timeout: float = 10.0,
    handle_sigterm: bool = True,
    max_string_length: int = 10_000,
    max_collection_items: int = 1_000,
    max_depth: int = 20,
    max_span_bytes: int = 1_000_000,
    enabled: bool = True,
    litellm_proxies: Iterable[str] | None = None,
) -> None:
    """Choose where spans go and how they are captured; replaces the previous setup.

    `exporter`: "auto" (Opik when configured, else SQLite), "opik", "sqlite",
    "console", "none", or an `Exporter` object. `db_path` overrides
    `TRACEKIT_DB` and `.tracekit/traces.db`. `redact` adds key-name patterns
    (globs such as "*_secret") to the built-in ones; `secrets` are values
    that never leave the process, wherever they appear in a span.
    `max_span_bytes` bounds all captured values of one span together. Spans waiting for the
    backend are bounded by `max_queue` (count) and `max_buffer_bytes`.
    `exit_timeout` bounds the whole flush at exit or SIGTERM; with
    `handle_sigterm`, tracekit flushes on SIGTERM when the application has no
    handler of its own. What the previous setup still held is flushed first,
    waiting at most `exit_timeout` seconds. `enabled=False` turns tracing
    off as `set_tracing_active(False)` does (that one keeps the setup).
    `litellm_proxies` are the base URLs of LiteLLM proxies (default:
    `TRACEKIT_LITELLM_PROXIES`, comma-separated): an `openai` client whose
    base URL starts with one asks the proxy to log its LLM span under the
    caller's span (`instrument_openai()`).
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
    if secrets is not None and (
        isinstance(secrets, str) or not all(isinstance(v, str) for v in secrets)
    ):
        raise TypeError(
            f"configure(secrets=...): expected a list of str, got {type(secrets).__name__}"
        )
    if not isinstance(handle_sigterm, bool):
        raise TypeError(f"configure(handle_sigterm={handle_sigterm!r}): expected True or False")
    if not isinstance(enabled, bool):
        raise TypeError(f"configure(enabled={enabled!r}): expected True or False")
    proxies = (
        _proxies_from_environment()
        if litellm_proxies is None
        else _checked_proxies(litellm_proxies)
    )
    numbers = {
        "max_queue": max_queue,
        "batch_size": batch_size,
        "max_buffer_bytes": max_buffer_bytes,
        "max_string_length": max_string_length,
        "max_collection_items": max_collection_items,
        "max_depth": max_depth,
        "max_span_bytes": max_span_bytes,
        "flush_interval": flush_interval,
        "exit_timeout": exit_timeout,
        "request_timeout": request_timeout,
    }
    for field, value in numbers.items():
        _check_number(field, value)
    if batch_size > max_queue:
        raise ValueError(
            f"configure(batch_size={batch_size!r}, max_queue={max_queue!r}): "
            "batch_size must not exceed max_queue"
        )

    path = Path(db_path or os.environ.get("TRACEKIT_DB") or DEFAULT_DB)
    if isinstance(exporter, str):
        if exporter == "opik":
            require("configure(exporter='opik')", "opik", "opik")
        name = _resolve_exporter_name(exporter)
        make_exporter = _exporter_factory(name, path, float(request_timeout))
    else:
        name = "opik" if _sends_to_opik(exporter) else type(exporter).__name__
        make_exporter = lambda: exporter  # noqa: E731
    options = ExportOptions(
        max_queue=max_queue,
        batch_size=batch_size,
        flush_interval=float(flush_interval),
        max_buffer_bytes=max_buffer_bytes,
        project_name=project_name,
        limits=Limits(max_string_length, max_collection_items, max_depth, max_span_bytes),
        redactor=Redactor((*DEFAULT_REDACT, *(redact or ())), tuple(secrets or ())),
    )
    # "none" queues nothing: spans still reach tracekit.testing.capture().
    processor = None if name == "none" else BatchProcessor(make_exporter, options)
    _install(processor, name, float(exit_timeout))
    _inputs.copy_limit = max_collection_items  # arguments copied at the call: no more
    _pipeline.litellm_proxies = proxies
    _pipeline_module.enabled = enabled
    _shutdown.handle_sigterm(handle_sigterm and processor is not None)


def _install(processor: BatchProcessor | None, exporter_name: str, exit_timeout: float) -> None:
    """Make `processor` the export pipeline (None: spans are not exported at all)."""
    with _pipeline.lock:
        previous = _pipeline.processor
        previous_timeout = _pipeline.exit_timeout
        _pipeline.processor = processor
        _pipeline.exporter_name = exporter_name
        _pipeline.exit_timeout = exit_timeout
        _pipeline.project_name = None if processor is None else processor.project_name
        if processor is not None:
            add_processor(processor, exporter=True)
        if previous is not None:
            remove_processor(previous)
    if previous is not None:
        previous.shutdown(previous_timeout)


def run_before_flush(timeout: float) -> bool:
    """Let integrations push out what their library still holds, within `timeout` in all.

    True when each says all of it was delivered.
    """
    deadline = _shutdown.Deadline(timeout)
    delivered = True
    for drain in _hooks.before_flush:
        try:
            delivered = drain(deadline.remaining()) and delivered
        except Exception:
            log_once(f"before_flush:{drain!r}", "tracekit: flushing an integration failed")
            delivered = False
    return delivered


def flush(timeout: float = 5.0) -> bool:
    """Wait up to `timeout` seconds until every span produced so far is delivered.

    First pushes out what instrumented libraries still hold (LiteLLM's pending
    callbacks). True only when every span produced before the call has been
    exported; False on a timeout, or once any span has been dropped or has
    failed since `configure()` (see `stats()`).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"flush(timeout={timeout!r}): expected a number of seconds, 0 or more")
    if not (math.isfinite(timeout) and timeout >= 0):
        raise ValueError(f"flush(timeout={timeout!r}): expected a number of seconds, 0 or more")
    deadline = _shutdown.Deadline(timeout)
    delivered = run_before_flush(timeout)
    processor = _pipeline.processor
    return (processor is None or processor.flush(deadline.remaining())) and delivered


def set_tracing_active(active: bool) -> None:
    """Turn tracing off (False) or back on (True) at run time; the setup is kept.

    While off, a tracked call costs one flag check and creates no span, and
    LiteLLM calls are left alone. (Opik: `opik.set_tracing_active`.)
    """
    if not isinstance(active, bool):
        raise TypeError(f"set_tracing_active({active!r}): expected True or False")
    _pipeline_module.enabled = active


def is_tracing_active() -> bool:
    """False while `set_tracing_active(False)` is in force."""
    return _pipeline_module.enabled


def default_project() -> str | None:
    """The project configured with `configure(project_name=...)`, if any."""
    return _pipeline.project_name


def stats() -> dict[str, int]:
    """Span counts since the last `configure()`.

    `produced` is every span that ended; each is in exactly one of `queued`
    (waiting), `in_flight` (being converted or sent), `exported`, `dropped`
    (refused by a bound, or abandoned at shutdown) and `failed` (the backend
    refused it, or it could not be converted): `produced` is always their sum.
    """
    processor = _pipeline.processor
    counts = processor.stats() if processor is not None else Stats()
    return {
        "produced": counts.produced,
        "queued": counts.queued,
        "in_flight": counts.in_flight,
        "exported": counts.exported,
        "dropped": counts.dropped,
        "failed": counts.failed,
    }


def exporter_name() -> str:
    """The exporter in use ("sqlite", "opik", ... or a custom exporter's class name)."""
    return _pipeline.exporter_name


def exit_timeout() -> float:
    """How long the flush at exit or SIGTERM may take, all stages together."""
    return _pipeline.exit_timeout


def shut_down_pipeline(timeout: float) -> None:
    """The last stage of exit: deliver what the pipeline holds within `timeout`."""
    processor = _pipeline.processor
    if processor is not None:
        processor.shutdown(timeout)


def _configure_from_environment() -> None:
    if not disabled:
        configure()


_configure_from_environment()
