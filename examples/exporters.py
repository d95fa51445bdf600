"""Choosing where spans go, and checking that nothing was lost.

    tracekit.configure(exporter="console")   # a tree on stderr per trace
    tracekit.configure(exporter="sqlite")    # .tracekit/traces.db (the default without Opik)
    tracekit.configure(exporter="opik")      # the opik SDK's client (OPIK_URL_OVERRIDE, ...)
    tracekit.configure(exporter="none")      # nothing leaves the process

Run: `.venv/bin/python examples/exporters.py`.
"""

from __future__ import annotations

import tracekit


@tracekit.track(type="tool")
def lookup(user_id: int, api_key: str) -> dict[str, object]:
    """`api_key` is redacted before anything is exported."""
    return {"user": user_id, "plan": "pro"}


@tracekit.track
def handle(request_id: str) -> str:
    lookup(42, api_key="sk-do-not-log")
    return "ok"


def main() -> None:
    tracekit.configure(exporter="console", redact=["*_id_secret"])
    for i in range(2):
        handle(f"req-{i}")
    # flush() waits for the background exporter; True when nothing was lost.
    print("delivered:", tracekit.flush(timeout=5))
    print("stats:", tracekit.stats())


if __name__ == "__main__":
    main()
