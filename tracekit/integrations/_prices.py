"""What an LLM call cost, from LiteLLM's price list, for calls LiteLLM did not make.

LiteLLM prices its own calls. A call made another way (the openai SDK) is
priced here from the same list: `litellm.model_cost` when LiteLLM is
imported already (it may hold prices the program registered), else the copy
of the list shipped inside the installed `litellm` package, read once without
importing LiteLLM (importing it costs a second and may fetch the list over
the network). Without LiteLLM installed, or for a model the list does not
know, there is no cost. Read on the export thread, never on the caller's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tracekit._log import log_once
from tracekit.integrations._llm_spans import finite_cost

__all__ = ["cost_of"]

_SHIPPED_LIST = "model_prices_and_context_window_backup.json"
_lock = threading.Lock()
_shipped: dict[str, Any] | None = None


def _shipped_prices() -> Mapping[str, Any]:
    """The price list inside the installed litellm package, read once ({} without it)."""
    global _shipped
    with _lock:
        if _shipped is None:
            _shipped = {}
            try:
                spec = importlib.util.find_spec("litellm")
                if spec is not None and spec.origin is not None:
                    path = Path(spec.origin).parent / _SHIPPED_LIST
                    if path.is_file():
                        loaded = json.loads(path.read_text(encoding="utf-8"))
                        if isinstance(loaded, dict):
                            _shipped = loaded
            except Exception:
                log_once("prices:read", "tracekit: could not read LiteLLM's price list")
        return _shipped


def _prices() -> Mapping[str, Any]:
    litellm = sys.modules.get("litellm")
    model_cost = getattr(litellm, "model_cost", None)
    return model_cost if isinstance(model_cost, dict) else _shipped_prices()


def _rate(entry: Mapping[str, Any], key: str) -> float:
    return finite_cost(entry.get(key)) or 0.0


def cost_of(models: tuple[str | None, ...], usage: Mapping[str, int] | None) -> float | None:
    """The cost of `usage` (Opik's token counts) at the first of `models` the list knows.

    Cached prompt tokens are charged at the cached rate where the list has one.
    """
    if not usage or "prompt_tokens" not in usage:
        return None
    prices = _prices()
    entry = next((prices[m] for m in models if m and isinstance(prices.get(m), dict)), None)
    if entry is None or "input_cost_per_token" not in entry:
        return None
    prompt = usage.get("prompt_tokens", 0)
    completion = usage.get("completion_tokens", 0)
    cached = usage.get(
        "original_usage.prompt_tokens_details.cached_tokens",
        usage.get("original_usage.input_tokens_details.cached_tokens", 0),
    )
    cached_rate = finite_cost(entry.get("cache_read_input_token_cost"))
    if cached_rate is None:
        cached = 0
    return (
        (prompt - cached) * _rate(entry, "input_cost_per_token")
        + cached * (cached_rate or 0.0)
        + completion * _rate(entry, "output_cost_per_token")
    )
