"""Calls LiteLLM did not make are priced as LiteLLM prices them (`_prices.cost_of`)."""

from __future__ import annotations

from typing import Any

import litellm
import pytest
from litellm.types.utils import ModelResponse

from tracekit.integrations._llm_spans import opik_usage
from tracekit.integrations._prices import cost_of

PLAIN = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
# Past the 272k-token long-context threshold of some models.
LONG = {"prompt_tokens": 300_000, "completion_tokens": 1000, "total_tokens": 301_000}
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("gpt-4o-mini-2024-07-18", PLAIN, None),
    ("gpt-4o-2024-08-06", PLAIN | {"prompt_tokens_details": {"cached_tokens": 600}}, None),
    (
        "o3-mini-2025-01-31",
        {"prompt_tokens": 100, "completion_tokens": 1000, "total_tokens": 1100}
        | {"completion_tokens_details": {"reasoning_tokens": 900}},
        None,
    ),
    (
        "gpt-4o-audio-preview-2024-12-17",
        PLAIN
        | {"prompt_tokens_details": {"audio_tokens": 900, "cached_tokens": 0}}
        | {"completion_tokens_details": {"audio_tokens": 400}},
        None,
    ),
    ("gpt-4o-mini-2024-07-18", PLAIN, "flex"),
    ("o3-2025-04-16", PLAIN | {"prompt_tokens_details": {"cached_tokens": 200}}, "flex"),
    ("gpt-5-2025-08-07", PLAIN, "priority"),
    ("ft:gpt-4o-mini-2024-07-18:my-org::abc123", PLAIN, None),
    *[
        (model, LONG | {"prompt_tokens_details": {"cached_tokens": cached}}, tier)
        for model in ("gpt-5.4", "gpt-6-astra")
        for cached in (0, 100_000)
        for tier in (None, "flex", "priority", "fast", "ultrafast")
    ],
    ("text-embedding-3-small", {"prompt_tokens": 1000, "total_tokens": 1000}, None),
]


@pytest.mark.parametrize(("model", "usage", "tier"), CASES)
def test_the_cost_is_litellms(model: str, usage: dict[str, Any], tier: str | None) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": model, "usage": usage}
    body["choices"] = [{"index": 0, "message": {"role": "assistant", "content": "a"}}]
    theirs = litellm.completion_cost(
        completion_response=ModelResponse(**body),
        custom_llm_provider="openai",
        **({"service_tier": tier} if tier else {}),
    )
    assert theirs > 0
    assert cost_of((model,), opik_usage(usage), tier) == pytest.approx(theirs)


def test_an_unknown_model_or_no_usage_has_no_cost() -> None:
    assert cost_of(("my-local-llama",), opik_usage(PLAIN)) is None
    assert cost_of(("gpt-4o-mini",), None) is None
    assert cost_of((None, "gpt-4o-mini"), opik_usage(PLAIN)) is not None
