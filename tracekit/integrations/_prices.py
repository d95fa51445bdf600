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
import re
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


# A service tier's suffix on the list's price keys (as LiteLLM reads them).
_TIER_SUFFIXES = {
    "flex": "_flex",
    "balanced": "_balanced",
    "priority": "_priority",
    "fast": "_priority",
    "ultrafast": "_ultrafast",
}
# Long-context prices: `input_cost_per_token_above_272k_tokens` and the like.
_THRESHOLD = re.compile(r"input_cost_per_token(_above_(\d+)(k?)_tokens)")


def _entry(prices: Mapping[str, Any], models: tuple[str | None, ...]) -> Mapping[str, Any] | None:
    """The first of `models` the list prices, a fine-tuned model at its base model's price."""
    for model in models:
        if not model:
            continue
        names = [model]
        if model.startswith("ft:"):  # ft:<base>:<org>::<id>
            base = model.split(":")[1]
            names += [f"ft:{base}", base]
        for name in names:
            entry = prices.get(name)
            if isinstance(entry, dict) and "input_cost_per_token" in entry:
                return entry
    return None


def cost_of(
    models: tuple[str | None, ...],
    usage: Mapping[str, int] | None,
    service_tier: str | None = None,
) -> float | None:
    """The cost of `usage` (Opik's token counts) at the first of `models` the list knows.

    As LiteLLM prices OpenAI's usage: cached prompt tokens at the cached
    rate, audio tokens at the audio rates, reasoning tokens at the reasoning
    rate where the list has one, a service tier's prices, and a prompt past
    a long-context threshold at that threshold's prices (all of its tokens).
    """
    if not usage or "prompt_tokens" not in usage:
        return None
    entry = _entry(_prices(), models)
    if entry is None:
        return None
    tier = _TIER_SUFFIXES.get(service_tier.lower(), "") if isinstance(service_tier, str) else ""
    above = _threshold_passed(entry, usage["prompt_tokens"])

    def rate(key: str, fallback: str | None = None) -> float:
        names = [f"{key}{above}{tier}", f"{key}{above}"] if above else []
        names += [f"{key}{tier}", key]
        if fallback is not None:
            names.append(fallback)
        for name in names:
            value = finite_cost(entry.get(name))
            if value is not None:
                return value
        return 0.0

    def details(field: str) -> int:
        return usage.get(f"original_usage.{field}", 0)

    cached = details("prompt_tokens_details.cached_tokens") or details(
        "input_tokens_details.cached_tokens"
    )
    audio_in = details("prompt_tokens_details.audio_tokens")
    audio_out = details("completion_tokens_details.audio_tokens")
    reasoning = details("completion_tokens_details.reasoning_tokens") or details(
        "output_tokens_details.reasoning_tokens"
    )
    if "cache_read_input_token_cost" not in entry:
        cached = 0  # billed as input tokens
    if "output_cost_per_reasoning_token" not in entry:
        reasoning = 0  # billed as output tokens
    text_in = max(usage["prompt_tokens"] - cached - audio_in, 0)
    text_out = max(usage.get("completion_tokens", 0) - audio_out - reasoning, 0)
    return (
        text_in * rate("input_cost_per_token")
        + cached * rate("cache_read_input_token_cost")
        + audio_in * rate("input_cost_per_audio_token", "input_cost_per_token")
        + text_out * rate("output_cost_per_token")
        + audio_out * rate("output_cost_per_audio_token", "output_cost_per_token")
        + reasoning * rate("output_cost_per_reasoning_token", "output_cost_per_token")
    )


def _threshold_passed(entry: Mapping[str, Any], prompt_tokens: int) -> str:
    """The key part (`_above_272k_tokens`) of the highest threshold the prompt is over, or ""."""
    passed, highest = "", 0
    for key in entry:
        found = _THRESHOLD.fullmatch(key)
        if found is None:
            continue
        threshold = int(found.group(2)) * (1000 if found.group(3) else 1)
        if prompt_tokens > threshold >= highest:
            passed, highest = found.group(1), threshold
    return passed
