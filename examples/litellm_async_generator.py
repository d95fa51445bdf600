"""An async generator that re-yields a LiteLLM stream, as a chat endpoint would.

The consumer stops after two pieces; the generator's span and the LLM span
still end, marked as not completed, and the consumer's work between pieces
stays under the consumer.

Run: `.venv/bin/python examples/litellm_async_generator.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import _offline  # noqa: F401  (before litellm: no traffic beyond this machine)
import litellm

import tracekit
from tracekit.testing import capture

tracekit.instrument_litellm()


@tracekit.track
async def chat_stream(question: str) -> AsyncGenerator[str, None]:
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        mock_response="streams are traced end to end",
        stream=True,
    )
    try:
        async for chunk in stream:
            yield chunk.choices[0].delta.content or ""
    finally:
        await stream.aclose()


@tracekit.track(type="tool")
def send_to_client(piece: str) -> None:
    print(f"-> {piece!r}")


@tracekit.track
async def endpoint() -> None:
    pieces = chat_stream("how are streams traced?")
    received = 0
    async for piece in pieces:
        send_to_client(piece)
        received += 1
        if received == 2:
            break
    await pieces.aclose()


def main() -> None:
    with capture() as captured:
        asyncio.run(endpoint())
    print(captured.tree())


if __name__ == "__main__":
    main()
