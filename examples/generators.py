"""Tracked generators stay real generators: send(), throw() and close() reach the body.

The generator's span is active only while its body runs, so what the consumer
does between items belongs to the consumer. Breaking out early still ends the
span, marked `generator_completed: False`.

Run: `.venv/bin/python examples/generators.py`.
"""

from __future__ import annotations

from collections.abc import Generator

import tracekit
from tracekit.testing import capture


@tracekit.track(type="tool")
def log_line(text: str) -> None:
    """Some traced work."""


@tracekit.track
def running_total() -> Generator[int, int, None]:
    """A coroutine-style generator: send numbers, get the running total back."""
    total = 0
    while True:
        log_line("body adds")  # nests under running_total
        total += yield total


@tracekit.track
def consumer() -> None:
    totals = running_total()
    next(totals)
    for number in (1, 2, 3):
        print("total:", totals.send(number))
        log_line("consumer prints")  # nests under consumer, not running_total
    totals.close()


def main() -> None:
    with capture() as captured:
        consumer()
    print(captured.tree())


if __name__ == "__main__":
    main()
