"""trio: run `litellm.completion` in a thread with `trio.to_thread.run_sync`.

`litellm.acompletion` cannot run under trio (it calls asyncio's
`run_in_executor`); `trio.to_thread.run_sync` carries the active span into
the thread, so the call still nests under the trio task's span.

Run: `.venv/bin/python examples/litellm_trio.py`.
"""

from __future__ import annotations

from functools import partial

import _offline  # noqa: F401  (before litellm: no traffic beyond this machine)
import litellm
import trio

import tracekit
from tracekit.testing import capture

tracekit.instrument_litellm()


@tracekit.track
async def ask(question: str) -> str:
    call = partial(
        litellm.completion,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        mock_response=f"answer to {question}",
    )
    response = await trio.to_thread.run_sync(call)
    return str(response.choices[0].message.content)


@tracekit.track
async def main_task() -> None:
    async with trio.open_nursery() as nursery:
        for question in ("why?", "how?"):
            nursery.start_soon(ask, question)


def main() -> None:
    with capture() as captured:
        trio.run(main_task)
    print(captured.tree())


if __name__ == "__main__":
    main()
