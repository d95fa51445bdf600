"""`instrument_litellm()` / `uninstrument_litellm()` without importing litellm early.

`import tracekit` must stay fast; litellm (seconds to import) is loaded only
when instrumenting is asked for.
"""

from __future__ import annotations

from tracekit._extras import require

__all__ = [
    "LiteLLMNotSupported",
    "instrument_litellm",
    "instrument_openai",
    "uninstrument_litellm",
    "uninstrument_openai",
]


class LiteLLMNotSupported(RuntimeError):
    """The installed LiteLLM lacks a place `instrument_litellm()` must hook into.

    Nothing was patched; the message names the LiteLLM version, what is
    missing and the versions tracekit supports.
    """


def instrument_litellm() -> None:
    """Attach every LiteLLM call made under an active span to that span.

    Fills `metadata["opik"]` (`current_span_data`, `project_name`, `tags`,
    `thread_id`) for LiteLLM's Opik callback, and logs each call's LLM span —
    successes unless LiteLLM's Opik callback is on, and always failures,
    cancelled calls and abandoned streams. Works however `litellm` functions
    were imported. Idempotent and thread-safe.

    Raises `LiteLLMNotSupported`, patching nothing, when the installed
    LiteLLM lacks a place tracekit must hook into.
    """
    require("instrument_litellm()", "litellm", "litellm", "opik")
    from tracekit.integrations.litellm import instrument_litellm as install

    install()


def uninstrument_litellm() -> None:
    """Undo `instrument_litellm()`, restoring everything it patched."""
    import sys

    module = sys.modules.get("tracekit.integrations.litellm")
    if module is not None:
        module.uninstrument_litellm()


def instrument_openai() -> None:
    """Trace the `openai` SDK's calls: each one LLM span, in the caller's trace.

    Chat completions (and `parse`), responses (and `parse`) and embeddings,
    sync, async and streamed, on every client. To any server but a LiteLLM
    proxy, tracekit records the call's LLM span (model, messages, output,
    usage, cost). For a client whose base URL is one of
    `configure(litellm_proxies=[...])` (or `TRACEKIT_LITELLM_PROXIES`), a
    call under an active span is a `general` client span, and the proxy is
    asked (in `extra_body`) to log its LLM span under it. Idempotent and
    thread-safe.
    """
    require("instrument_openai()", "openai", "openai")
    from tracekit.integrations.openai import instrument_openai as install

    install()


def uninstrument_openai() -> None:
    """Undo `instrument_openai()`."""
    import sys

    module = sys.modules.get("tracekit.integrations.openai")
    if module is not None:
        module.uninstrument_openai()
