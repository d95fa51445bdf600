"""Per-call overhead of @tracekit.track against a plain call, the floor and peer SDKs.

Run: `make bench` (or `.venv/bin/python benchmarks/overhead.py [--rounds N]`).

Every case is timed in each of several interleaved rounds and the table shows
medians, so a noisy moment hurts every case alike. "Overhead" is the case's
time minus the untraced baseline's; "x floor" divides it by the floor's
overhead (a bare ContextVar set/restore around the same call, the least any
context-propagating tracer can do) measured in the same round, and shows the
median of those per-round ratios: a machine whose speed drifts between
rounds moves both sides of a ratio alike. Peers run in the same process and rounds:
`@opik.track` exporting to a local HTTP sink, and an OpenTelemetry SDK span
with an in-memory exporter. Generator items are set against a per-item floor:
a ContextVar set/restore around each step of the body.

Start-up: `import tracekit` in fresh interpreters, bytecode cached.

Sustained: each case then runs 100,000 calls in a row, as a busy service
does, tracekit once capturing only and once with the SQLite exporter writing
while the calls run (its queue holds the whole run, so every span is written;
the run fails if any is lost). "CPU µs/span" is process CPU over the run and
the drain after it, export included, so the cost the export thread adds to
a busy program shows. "SQLite alone" is the store's floor on the machine:
the run's span and trace rows inserted again from ready tuples (same schema,
batches of 500), no span converted and no JSON made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Generator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http_sink import start_sink

SINK_URL, _sink = start_sink()
# Keep every byte on 127.0.0.1: Opik reports to Sentry and analytics by default.
os.environ.update(
    OPIK_URL_OVERRIDE=f"{SINK_URL}/api/",
    OPIK_SENTRY_ENABLE="false",
    OPIK_ANALYTICS_ENABLE="false",
    OPIK_PROJECT_NAME="bench",
    OPIK_WORKSPACE="default",
)

import opik  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

import tracekit  # noqa: E402

tracekit.configure(exporter="none")  # capture only, but in the sustained SQLite runs

Timer = Callable[[int], float]  # runs n operations, returns seconds


def _per_op(run: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    run(n)
    return (time.perf_counter() - start) / n


# --- the work being traced -------------------------------------------------


def work(x: int) -> int:
    return x + 1


MESSAGES = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(10)]


def chat(messages: list[dict[str, str]]) -> int:
    return len(messages)


async def awork(x: int) -> int:
    return x + 1


def items(n: int) -> Generator[int, None, None]:
    yield from range(n)


async def aitems(n: int) -> AsyncGenerator[int, None]:
    for i in range(n):
        yield i


def nested_plain(x: int) -> int:
    return _nested_plain_2(x)


def _nested_plain_2(x: int) -> int:
    return work(x)


traced = tracekit.track(work)
atraced = tracekit.track(awork)
traced_chat = tracekit.track(chat)
traced_items = tracekit.track(items)
traced_aitems = tracekit.track(aitems)


@tracekit.track
def nested_traced(x: int) -> int:
    return _nested_traced_2(x)


@tracekit.track
def _nested_traced_2(x: int) -> int:
    return traced(x)


opik_traced = opik.track(work)
opik_items = opik.track(items)

_floor_var: contextvars.ContextVar[object] = contextvars.ContextVar("floor", default=None)
_marker = object()


def floor(x: int) -> int:
    previous = _floor_var.get()
    _floor_var.set(_marker)
    try:
        return work(x)
    finally:
        _floor_var.set(previous)


_otel_exporter = InMemorySpanExporter()
_otel_provider = TracerProvider()
_otel_provider.add_span_processor(SimpleSpanProcessor(_otel_exporter))
_otel_tracer = _otel_provider.get_tracer("bench")


def floor_items(n: int) -> Generator[int, None, None]:
    """The least a tracer that keeps its span active inside a generator does per item.

    The span is made current while the body runs and the consumer's restored
    when it yields: one ContextVar set/restore around each step.
    """
    body = items(n)
    while True:
        previous = _floor_var.get()
        _floor_var.set(_marker)
        try:
            item = next(body)
        except StopIteration:
            return
        finally:
            _floor_var.set(previous)
        yield item


def otel(x: int) -> int:
    with _otel_tracer.start_as_current_span("work"):
        return work(x)


# --- timers ------------------------------------------------------------------


def messages_timer(fn: Callable[[list[dict[str, str]]], int]) -> Timer:
    """A call with typical chat arguments: a list of 10 message dicts."""

    def run(n: int) -> None:
        for _ in range(n):
            fn(MESSAGES)

    return lambda n: _per_op(run, n)


def call_timer(fn: Callable[[int], int]) -> Timer:
    def run(n: int) -> None:
        for i in range(n):
            fn(i)

    return lambda n: _per_op(run, n)


def async_timer(fn: Callable[[int], object]) -> Timer:
    async def loop(n: int) -> None:
        for i in range(n):
            await fn(i)  # type: ignore[misc]

    def timed(n: int) -> float:
        async def measured() -> float:
            start = time.perf_counter()
            await loop(n)
            return (time.perf_counter() - start) / n

        return asyncio.run(measured())

    return timed


def gen_timer(factory: Callable[[int], Generator[int, None, None]], length: int) -> Timer:
    def run(n: int) -> None:
        for _ in range(n):
            for _ in factory(length):
                pass

    return lambda n: _per_op(run, n)


def agen_timer(factory: Callable[[int], AsyncGenerator[int, None]], length: int) -> Timer:
    def timed(n: int) -> float:
        async def measured() -> float:
            start = time.perf_counter()
            for _ in range(n):
                async for _ in factory(length):
                    pass
            return (time.perf_counter() - start) / n

        return asyncio.run(measured())

    return timed


def flushed(timer: Timer) -> Timer:
    """Opik exports in the background: let it finish so it does not slow the next case."""

    def timed(n: int) -> float:
        result = timer(n)
        opik.flush_tracker()
        return result

    return timed


LONG = 1000
CASES: dict[str, tuple[Timer, int]] = {
    "plain call": (call_timer(work), 20_000),
    "floor (ContextVar set/restore)": (call_timer(floor), 20_000),
    "tracekit sync": (call_timer(traced), 20_000),
    "plain chat call": (messages_timer(chat), 20_000),
    "tracekit chat call": (messages_timer(traced_chat), 20_000),
    "OpenTelemetry SDK span": (call_timer(otel), 5_000),
    "opik.track sync": (flushed(call_timer(opik_traced)), 300),
    "plain async": (async_timer(awork), 20_000),
    "tracekit async": (async_timer(atraced), 20_000),
    "plain nested x3": (call_timer(nested_plain), 10_000),
    "tracekit nested x3": (call_timer(nested_traced), 10_000),
    "plain gen, 1 item": (gen_timer(items, 1), 20_000),
    "floor gen, 1 item": (gen_timer(floor_items, 1), 20_000),
    "tracekit gen, 1 item": (gen_timer(traced_items, 1), 10_000),
    "opik gen, 1 item": (flushed(gen_timer(opik_items, 1)), 200),
    f"plain gen, {LONG} items": (gen_timer(items, LONG), 50),
    f"floor gen, {LONG} items": (gen_timer(floor_items, LONG), 50),
    f"tracekit gen, {LONG} items": (gen_timer(traced_items, LONG), 50),
    f"opik gen, {LONG} items": (flushed(gen_timer(opik_items, LONG)), 20),
    "plain agen, 1 item": (agen_timer(aitems, 1), 10_000),
    "tracekit agen, 1 item": (agen_timer(traced_aitems, 1), 10_000),
    f"plain agen, {LONG} items": (agen_timer(aitems, LONG), 30),
    f"tracekit agen, {LONG} items": (agen_timer(traced_aitems, LONG), 30),
}


def measure(rounds: int) -> list[dict[str, float]]:
    """Each round's time per operation of every case, in µs."""
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for timer, n in CASES.values():  # warm up
        timer(max(1, n // 10))
    _otel_exporter.clear()
    for _ in range(rounds):
        for name, (timer, n) in CASES.items():
            samples[name].append(timer(n))
            _otel_exporter.clear()
    return [{name: values[r] * 1e6 for name, values in samples.items()} for r in range(rounds)]


def report(rounds: list[dict[str, float]]) -> list[tuple[str, float, float | None, float | None]]:
    """Per row: median overhead, median untraced time, median of the per-round x floor."""
    per_round = [_rows(us) for us in rounds]
    table = []
    for index, (label, _, plain, _) in enumerate(per_round[0]):
        column = [rows[index] for rows in per_round]
        ratios = [row[3] for row in column if row[3] is not None]
        table.append(
            (
                label,
                statistics.median(row[1] for row in column),
                None if plain is None else statistics.median(row[2] or 0.0 for row in column),
                statistics.median(ratios) if ratios else None,
            )
        )
    return table


def _rows(us: dict[str, float]) -> list[tuple[str, float, float | None, float | None]]:
    floor_overhead = us["floor (ContextVar set/restore)"] - us["plain call"]
    item_floor = (us[f"floor gen, {LONG} items"] - us["floor gen, 1 item"]) / (LONG - 1) - (
        us[f"plain gen, {LONG} items"] - us["plain gen, 1 item"]
    ) / (LONG - 1)

    def per_item(kind: str, tracer: str) -> float:
        long_items = us[f"{tracer} {kind}, {LONG} items"] - us[f"plain {kind}, {LONG} items"]
        fixed = us[f"{tracer} {kind}, 1 item"] - us[f"plain {kind}, 1 item"]
        return (long_items - fixed) / (LONG - 1)

    rows: list[tuple[str, float, float | None, float]] = [
        ("floor: ContextVar set/restore", floor_overhead, us["plain call"], floor_overhead),
        (
            "tracekit sync call",
            us["tracekit sync"] - us["plain call"],
            us["plain call"],
            floor_overhead,
        ),
        (
            "tracekit async call",
            us["tracekit async"] - us["plain async"],
            us["plain async"],
            floor_overhead,
        ),
        (
            "tracekit sync call, 10 chat messages",
            us["tracekit chat call"] - us["plain chat call"],
            us["plain chat call"],
            floor_overhead,
        ),
        (
            "tracekit nested depth 3 (per outer call)",
            us["tracekit nested x3"] - us["plain nested x3"],
            us["plain nested x3"],
            floor_overhead,
        ),
        (
            "tracekit generator, fixed",
            us["tracekit gen, 1 item"] - us["plain gen, 1 item"],
            us["plain gen, 1 item"],
            floor_overhead,
        ),
        ("generator floor, per item", item_floor, None, item_floor),
        ("tracekit generator, per item", per_item("gen", "tracekit"), None, item_floor),
        (
            "tracekit async generator, fixed",
            us["tracekit agen, 1 item"] - us["plain agen, 1 item"],
            us["plain agen, 1 item"],
            floor_overhead,
        ),
        ("tracekit async generator, per item", per_item("agen", "tracekit"), None, item_floor),
        (
            "OpenTelemetry SDK span (in-memory)",
            us["OpenTelemetry SDK span"] - us["plain call"],
            None,
            floor_overhead,
        ),
        ("opik.track sync call", us["opik.track sync"] - us["plain call"], None, floor_overhead),
        ("opik.track generator, per item", per_item("gen", "opik"), None, item_floor),
    ]
    return [
        (label, overhead, plain, overhead / floor if floor > 0 else None)
        for label, overhead, plain, floor in rows
    ]


SUSTAINED_CALLS = 100_000
OPIK_SUSTAINED_CALLS = 1_000  # ~0.3-5 ms each: 100,000 would take minutes


def _sustained_round(db: Path) -> dict[str, tuple[float, float]]:
    """One round of long runs of calls: (µs per call on the caller, process CPU µs per span)."""

    def run(timer: Timer, calls: int, drain: Callable[[], object]) -> tuple[float, float]:
        cpu = time.process_time()
        per_call = timer(calls)
        drain()  # what is still queued is part of each span's cost
        return per_call * 1e6, (time.process_time() - cpu) / calls * 1e6

    tracekit.configure(exporter="none")
    result = {
        "plain": run(call_timer(work), SUSTAINED_CALLS, lambda: None),
        "floor": run(call_timer(floor), SUSTAINED_CALLS, lambda: None),
        "capture": run(call_timer(traced), SUSTAINED_CALLS, lambda: None),
        "otel": run(call_timer(otel), SUSTAINED_CALLS, _otel_exporter.clear),
        "opik": run(call_timer(opik_traced), OPIK_SUSTAINED_CALLS, opik.flush_tracker),
    }
    # The queue holds the whole run, so no span is dropped and every one is written.
    tracekit.configure(exporter="sqlite", db_path=db, max_queue=SUSTAINED_CALLS)
    traced(0)  # the export threads start now, not inside the timed run
    tracekit.flush(60)
    result["sqlite"] = run(call_timer(traced), SUSTAINED_CALLS, lambda: tracekit.flush(600))
    counts = tracekit.stats()
    if counts["dropped"] or counts["failed"]:
        raise SystemExit(f"the sustained run lost spans: {counts}")
    tracekit.configure(exporter="none")
    result["store"] = (0.0, _store_floor(db) + result["plain"][1])
    db.unlink()
    return result


def _store_floor(db: Path) -> float:
    """Process CPU µs per root span to insert the run's rows again, from ready tuples.

    The same span and trace rows, schema and batches of 500, one transaction
    each, with SQLite's own executemany: no span is converted and no JSON
    made, so what is left is the store's floor on this machine.
    """
    from tracekit import _store

    with contextlib.closing(sqlite3.connect(db)) as source:
        spans = source.execute(f"SELECT {_store.SPANS.select} FROM spans").fetchall()
        traces = source.execute(f"SELECT {_store.TRACES.select} FROM traces").fetchall()
    with contextlib.closing(_store.connect(db.with_name("floor.db"), create=True)) as conn:
        cpu = time.process_time()
        for start in range(0, len(spans), 500):
            conn.execute("BEGIN")
            conn.executemany(_store.SPANS.insert, spans[start : start + 500])
            conn.executemany(_store.TRACES.insert, traces[start : start + 500])
            conn.execute("COMMIT")
        spent = time.process_time() - cpu
    for path in db.parent.glob("floor.db*"):
        path.unlink()
    return spent / len(traces) * 1e6


def sustained(rounds: int) -> list[tuple[str, float | None, float | None, float]]:
    """Per row: median overhead per call, its x floor, median process CPU per span.

    The store's floor is CPU only: it is no traced call.
    """
    with tempfile.TemporaryDirectory() as folder:
        samples = [_sustained_round(Path(folder) / "bench.db") for _ in range(rounds)]
    rows = [
        ("floor: ContextVar set/restore", "floor"),
        ("tracekit, capture only (exporter none)", "capture"),
        ("tracekit, SQLite export on", "sqlite"),
        ("  SQLite alone: its rows from ready tuples", "store"),
        ("OpenTelemetry SDK span (in-memory)", "otel"),
        (f"opik.track ({OPIK_SUSTAINED_CALLS:,} calls, local sink)", "opik"),
    ]
    table: list[tuple[str, float | None, float | None, float]] = []
    for label, key in rows:
        cpu = statistics.median(sample[key][1] - sample["plain"][1] for sample in samples)
        if key == "store":
            table.append((label, None, None, cpu))
            continue
        overheads = [sample[key][0] - sample["plain"][0] for sample in samples]
        floors = [sample["floor"][0] - sample["plain"][0] for sample in samples]
        ratios = [o / f for o, f in zip(overheads, floors, strict=True) if f > 0]
        table.append((label, statistics.median(overheads), statistics.median(ratios), cpu))
    return table


IMPORT_RUNS = 21


def import_time(runs: int = IMPORT_RUNS) -> tuple[float, float]:
    """Median and best wall ms of `import tracekit` in fresh interpreters.

    With bytecode caches written first, as an installed package has them: with
    PYTHONDONTWRITEBYTECODE set and stale caches, every run would compile.
    """
    code = "import time; t = time.perf_counter(); import tracekit; print(time.perf_counter() - t)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TRACEKIT_EXPORTER"] = "none"
    subprocess.run([sys.executable, "-c", "import tracekit"], env=env, check=True)
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        * 1e3
        for _ in range(runs)
    ]
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--sustained-rounds", type=int, default=3, help="rounds of the sustained runs (default 3)"
    )
    args = parser.parse_args()
    median_ms, best_ms = import_time()  # first, while nothing of this process runs
    us = measure(args.rounds)
    print(
        f"Medians of {args.rounds} interleaved rounds, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs. Overhead = traced - untraced.\n"
    )
    print(f"| {'case':<42} | {'overhead µs':>11} | {'untraced µs':>11} | {'x floor':>7} |")
    print(f"|{'-' * 44}|{'-' * 13}|{'-' * 13}|{'-' * 9}|")
    for label, overhead, plain, ratio in report(us):
        plain_text = f"{plain:11.3f}" if plain is not None else f"{'':>11}"
        ratio_text = f"{ratio:7.1f}" if ratio is not None else f"{'':>7}"
        print(f"| {label:<42} | {overhead:11.3f} | {plain_text} | {ratio_text} |")
    print(
        f"\n`import tracekit` in a fresh interpreter ({IMPORT_RUNS} runs, bytecode cached): "
        f"median {median_ms:.1f} ms, best {best_ms:.1f} ms."
    )
    print(
        f"\nSustained: {SUSTAINED_CALLS:,} sync calls in a row per case, medians of "
        f"{args.sustained_rounds} rounds; CPU = process CPU per span over the run and "
        "the drain after it (export included), minus a plain call's.\n"
    )
    print(f"| {'case':<42} | {'overhead µs':>11} | {'x floor':>7} | {'CPU µs/span':>11} |")
    print(f"|{'-' * 44}|{'-' * 13}|{'-' * 9}|{'-' * 13}|")
    for label, overhead, ratio, cpu in sustained(args.sustained_rounds):
        overhead_text = f"{'':>11}" if overhead is None else f"{overhead:11.3f}"
        ratio_text = f"{'':>7}" if ratio is None else f"{ratio:7.1f}"
        print(f"| {label:<42} | {overhead_text} | {ratio_text} | {cpu:11.2f} |")


if __name__ == "__main__":
    main()
