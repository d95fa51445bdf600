"""asyncio fan-out: each gathered task's LLM call nests under its own span.

Run: `.venv/bin/python examples/litellm_fanout.py`.
"""

from __future__ import annotations

import os

# Keep every byte on this machine: LiteLLM fetches its cost map and Opik
# reports to Sentry and analytics unless told not to.
for _name, _value in (
    ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ("OPIK_SENTRY_ENABLE", "false"),
    ("OPIK_ANALYTICS_ENABLE", "false"),
):
    os.environ.setdefault(_name, _value)

import asyncio

import litellm

import tracekit
from tracekit.testing import capture

tracekit.instrument_litellm()


@tracekit.track
async def summarize(doc: str) -> str:
    response = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"summarize {doc}"}],
        mock_response=f"summary of {doc}",
    )
    return str(response.choices[0].message.content)


@tracekit.track
async def summarize_all(docs: list[str]) -> list[str]:
    return list(await asyncio.gather(*(summarize(doc) for doc in docs)))


def main() -> None:
    with capture() as captured:
        print(asyncio.run(summarize_all(["a.txt", "b.txt", "c.txt"])))
    print(captured.tree())


if __name__ == "__main__":
    main()
