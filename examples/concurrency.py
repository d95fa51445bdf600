"""The active span follows your work into asyncio tasks, trio tasks and threads.

Run: `.venv/bin/python examples/concurrency.py`. Prints one tree per trace.
"""

from __future__ import annotations

import asyncio
import threading

import trio

import tracekit
from tracekit.testing import capture


@tracekit.track(type="tool")
def fetch(url: str) -> str:
    return f"<html of {url}>"


@tracekit.track
async def fetch_async(url: str) -> str:
    await asyncio.sleep(0)
    return fetch(url)


@tracekit.track
async def asyncio_fan_out() -> None:
    """asyncio: tasks inherit the span active where they were created."""
    async with asyncio.TaskGroup() as group:
        for url in ("a.example", "b.example"):
            group.create_task(fetch_async(url))
    await asyncio.gather(fetch_async("c.example"), fetch_async("d.example"))


@tracekit.track
async def trio_fan_out() -> None:
    """trio: children inherit from the task that called start_soon; to_thread carries the span."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, fetch, "e.example")
        nursery.start_soon(trio.to_thread.run_sync, fetch, "f.example")


@tracekit.track
def thread_fan_out() -> None:
    """Threads copy no context by themselves: use tracekit.ThreadPoolExecutor or propagate()."""
    with tracekit.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fetch, ["g.example", "h.example"]))
    worker = threading.Thread(target=tracekit.propagate(fetch), args=("i.example",))
    worker.start()
    worker.join()


def main() -> None:
    with capture() as captured:
        asyncio.run(asyncio_fan_out())
        trio.run(trio_fan_out)
        thread_fan_out()
    print(captured.tree())


if __name__ == "__main__":
    main()
