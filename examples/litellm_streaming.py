"""Streaming: the LLM span nests where the call was made, wherever chunks are read.

- a sync stream read chunk by chunk;
- a tracked function that *returns* a stream: its span stays open until the
  stream ends, and its output is the streamed text;
- an async stream read in another task, and one abandoned early (still
  logged, with `stream_completed: False`).

Run: `.venv/bin/python examples/litellm_streaming.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _offline  # noqa: F401  (before litellm: no traffic beyond this machine)
import litellm

import tracekit
from tracekit.testing import capture

tracekit.instrument_litellm()
MESSAGES = [{"role": "user", "content": "tell me a story"}]


@tracekit.track
def story() -> Any:
    """Returns the stream; the caller consumes it."""
    return litellm.completion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response="once upon a time", stream=True
    )


@tracekit.track
async def async_story() -> None:
    stream = await litellm.acompletion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response="in a land far away", stream=True
    )

    async def reader() -> None:  # another task reads the stream
        async for chunk in stream:
            print(chunk.choices[0].delta.content or "", end="")
        print()

    await asyncio.create_task(reader())
    impatient = await litellm.acompletion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response="a very long tale", stream=True
    )
    async for _ in impatient:
        break  # abandoned after one chunk
    await impatient.aclose()


def main() -> None:
    with capture() as captured:
        for chunk in story():
            print(chunk.choices[0].delta.content or "", end="")
        print()
        asyncio.run(async_story())
    print(captured.tree())


if __name__ == "__main__":
    main()
