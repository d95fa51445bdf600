"""tracekit in one screen: nested sync, async and generator work, one trace.

Run with `make demo`. No API key, no server: spans go to the local SQLite
file (.tracekit/traces.db, or $TRACEKIT_DB), and `tracekit show last`
prints the tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator

import tracekit


@tracekit.track(type="tool")
def search(query: str) -> list[str]:
    """A tool the assistant calls."""
    return [f"doc about {query}"]


@tracekit.track
def chunk(text: str) -> Generator[str, None, None]:
    """A generator: its span is active only while its body runs."""
    yield from text.split()


@tracekit.track
async def summarize(docs: list[str]) -> str:
    """Async work nests under whoever awaits it."""
    await asyncio.sleep(0.01)
    return " / ".join(docs)


@tracekit.track
async def stream_answer(summary: str) -> AsyncGenerator[str, None]:
    """An async generator, consumed by the caller item by item."""
    for word in summary.split():
        await asyncio.sleep(0)
        yield word


@tracekit.track(name="answer_question")
async def answer(question: str) -> str:
    docs = search(question)
    words = list(chunk(question))
    summaries = await asyncio.gather(summarize(docs), summarize(words))
    with tracekit.span("post-process", type="general") as step:
        pieces = [piece async for piece in stream_answer(summaries[0])]
        step.update(output=len(pieces))
    return " ".join(pieces)


def main() -> None:
    tracekit.configure(exporter="sqlite", project_name="quickstart")
    with tracekit.context(tags=["demo"], thread_id="conversation-1"):
        result = asyncio.run(answer("what is tracing"))
    print(f"answer: {result}")
    delivered = tracekit.flush()
    print(f"exported: {delivered} {tracekit.stats()} -> run `tracekit show last`")


if __name__ == "__main__":
    main()
