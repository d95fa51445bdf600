"""asyncio fan-out: each gathered task's LLM call nests under its own span.

Run: `.venv/bin/python examples/litellm_fanout.py`.
"""

from __future__ import annotations

import asyncio

import _offline  # noqa: F401  (before litellm: no traffic beyond this machine)
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
