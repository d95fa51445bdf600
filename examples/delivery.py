"""Nothing is lost silently: the account of every span, a backend that stalls, and SIGTERM.

    tracekit.stats()   # produced == queued + in_flight + exported + dropped + failed
    tracekit.flush(5)  # True only when every span produced so far was exported

Run: `.venv/bin/python examples/delivery.py`. It traces a few requests into the
local SQLite store, then switches to a backend that never answers with a tiny
buffer, and shows what was held, dropped and reported. Last, it sends itself
SIGTERM: tracekit flushes, then the process dies of SIGTERM as it would have
(exit status 143 in a shell).
"""

from __future__ import annotations

import os
import signal
import threading

import tracekit
from tracekit.exporters import Exporter


class NeverAnswers:
    """A backend that accepts the connection and then never replies."""

    def export(self, batch: object) -> None:
        threading.Event().wait()

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        pass


@tracekit.track
def handle(request_id: int, document: str) -> int:
    return len(document)


def account() -> str:
    counts = tracekit.stats()
    parts = ("queued", "in_flight", "exported", "dropped", "failed")
    balanced = counts["produced"] == sum(counts[p] for p in parts)
    return " ".join(f"{k}={v}" for k, v in counts.items()) + f" balanced={balanced}"


def main() -> None:
    tracekit.configure(exporter="sqlite")
    for i in range(100):
        handle(i, "x" * 1_000)
    print("healthy store:  delivered:", tracekit.flush(timeout=5))
    print("                ", account())

    stalled: Exporter = NeverAnswers()
    tracekit.configure(exporter=stalled, max_queue=50, batch_size=10, exit_timeout=0.5)
    for i in range(200):
        handle(i, "y" * 1_000)
    print("stalled backend: delivered:", tracekit.flush(timeout=0.5))
    print("                ", account())

    tracekit.configure(exporter="sqlite", exit_timeout=5)
    handle(0, "last words")
    print("SIGTERM: flushing, then exiting as SIGTERM would", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
