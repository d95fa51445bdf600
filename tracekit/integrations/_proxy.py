"""Calls through a LiteLLM proxy: what the request carries so the proxy's LLM span nests.

A LiteLLM proxy with its Opik callback logs each request's LLM span. It
nests that span under a caller's span only when the request body carries
`metadata.opik.current_span_data` as an object `{"id", "trace_id"}`, and
files it in `metadata.opik.project_name`. Provider-neutral: any client that
forwards `extra_body` (LiteLLM's `litellm_proxy/` provider, the openai SDK)
uses it.
"""

from __future__ import annotations

from typing import Any

from tracekit import _config
from tracekit._log import log_once
from tracekit._span import Span

__all__ = ["ask_proxy_to_nest", "proxy_can_nest"]


def _opik_project(span: Span) -> str | None:
    """The project the span's trace is recorded in, as the Opik exporter files it."""
    project = span.project_name or _config.default_project()
    if project is None:
        try:
            from opik.api_objects import opik_client

            project = opik_client.get_client_cached().config.project_name
        except Exception:
            return None
    return project


def proxy_can_nest() -> bool:
    """Can a proxy's span nest under tracekit's? Only when tracekit exports to Opik too.

    Exporting elsewhere, the proxy's span would point at a trace Opik never
    gets: the proxy is told nothing (said once) and logs its own trace.
    """
    exporter = _config.exporter_name()
    if exporter == "opik":
        return True
    log_once(
        "proxy:exporter-elsewhere",
        "tracekit: a call through a LiteLLM proxy, but tracekit exports to %r, not Opik: "
        "the proxy logs its LLM span in a trace of its own",
        exporter,
        exc_info=False,
    )
    return False


def _proxy_not_told(why: str) -> None:
    log_once(
        f"litellm:proxy-untold:{why}",
        "tracekit: a call through a LiteLLM proxy is not joined to its trace: the caller's "
        "extra_body is kept as given, and %s; the proxy logs it in a trace of its own",
        why,
        exc_info=False,
    )


def ask_proxy_to_nest(kwargs: dict[str, Any], span: Span, request_metadata: object = None) -> None:
    """Ask the proxy to log the call under `span`, in its trace's project, with its tags.

    Sent as `extra_body={"metadata": {"opik": {...}}}`, which LiteLLM forwards
    to the proxy; the caller's values win, the caller's dicts are never changed.
    `request_metadata` is the request's own top-level `metadata` (the openai
    SDK's argument), which `extra_body["metadata"]` would replace whole: it is
    kept, merged under what tracekit adds. Only when tracekit exports to Opik:
    the proxy's span must find its trace there.
    """
    if not proxy_can_nest():
        return
    extra = kwargs.get("extra_body")
    extra = dict(extra) if isinstance(extra, dict) else {} if extra is None else None
    metadata = extra.get("metadata", request_metadata) if extra is not None else None
    metadata = dict(metadata) if isinstance(metadata, dict) else {} if metadata is None else None
    opik = metadata.get("opik") if metadata is not None else None
    opik = dict(opik) if isinstance(opik, dict) else {} if opik is None else None
    if extra is None or metadata is None or opik is None:
        _proxy_not_told("extra_body, its metadata or metadata['opik'] is not a dict")
        return  # the caller's, left alone
    project = _opik_project(span)
    given_project = opik.get("project_name")
    if given_project is not None and given_project != project:
        # Filed in another project than its trace, the proxy's span would be an orphan.
        _proxy_not_told(f"its project_name {given_project!r} is not the trace's ({project!r})")
        return
    opik.setdefault("current_span_data", {"id": span.id, "trace_id": span.trace_id})
    if project:
        opik.setdefault("project_name", project)
    parent = span._parent
    if parent is not None and parent.tags:
        opik.setdefault("tags", list(parent.tags))
    metadata["opik"] = opik
    extra["metadata"] = metadata
    kwargs["extra_body"] = extra
