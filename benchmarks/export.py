"""Export throughput and the traced-call overhead with each exporter on.

Run: `make bench-export` (or `.venv/bin/python benchmarks/export.py`).

Throughput: traces of 5 spans (a root and 4 children, the shape of a small
agent step) are produced as fast as one thread can, then flushed; spans/s is
end to end (produce + export, both on this machine's cores), and the export
thread's CPU per span is the process CPU minus the producing thread's.

Sustained: 1,000,000 spans produced as fast as one thread can, with the
default SQLite settings (queue 10,000, buffer 64 MB): spans/s, what was
exported or dropped, and the process RSS at the start, at its peak and at
the end.

Scrubbing: traces of one LLM-sized span (a 2 KB prompt in, a 1 KB answer
out) through SQLite, export-thread CPU per span with secret scrubbing as
shipped, and with `Redactor.scrub` replaced by the identity (scrubbing off).

Opik exporter alone: the records of the throughput run's traces, built once,
then exported in batches of 500 through `OpikExporter.export` (records to
payload, encoding, gzip, HTTP POST and the server's answer): process CPU per
span, with nothing else running in this process and the server in its own.

Overhead: medians over interleaved rounds of bursts of traced calls, the
exporter draining (untimed) between bursts, against the same call with
exporter "none" (capture only: the span is recorded, nothing exported).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The Opik-compatible test server runs in its own process, so its CPU is not counted.
SERVER = subprocess.Popen(
    [
        sys.executable,
        "-c",
        "import sys, threading; from tests.opik_server import OpikServer; "
        "print(OpikServer().start().url, flush=True); sys.stdin.read()",
    ],
    cwd=ROOT,
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
)
assert SERVER.stdout is not None
os.environ.update(
    OPIK_URL_OVERRIDE=SERVER.stdout.readline().strip(),
    OPIK_SENTRY_ENABLE="false",
    OPIK_ANALYTICS_ENABLE="false",
    OPIK_PROJECT_NAME="bench",
    OPIK_WORKSPACE="default",
)

import tracekit  # noqa: E402

DB = Path(tempfile.mkdtemp()) / "bench.db"
EXPORTERS = ("none", "sqlite", "opik")


@tracekit.track
def leaf(x: int, label: str = "step") -> int:
    return x


@tracekit.track
def request(n: int) -> int:
    for i in range(4):
        leaf(i)
    return n


def configure(name: str) -> None:
    tracekit.configure(exporter=name, db_path=DB, max_queue=1_000_000, batch_size=500)


def throughput(name: str, traces: int) -> tuple[float, float]:
    """(spans/s end to end, export-thread CPU µs per span)."""
    configure(name)
    # One trace delivered first: the exporter is built (opik: seconds of
    # import and client set-up) and connected before the clock starts.
    request(-1)
    assert tracekit.flush(60)
    cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    for n in range(traces):
        request(n)
    delivered = tracekit.flush(600)
    wall = time.perf_counter() - wall0
    export_cpu = (time.process_time() - cpu0) - (time.thread_time() - thread0)
    spans = traces * 5
    assert delivered, tracekit.stats()
    return spans / wall, export_cpu / spans * 1e6


def opik_exporter_cost(traces: int, batch_size: int = 500, rounds: int = 5) -> float:
    """Process CPU µs per span of `OpikExporter.export` alone (median of `rounds`)."""
    from tracekit._records import Batch, span_record, trace_record
    from tracekit.exporters._opik import OpikExporter

    tracekit.configure(exporter="none")
    with tracekit.testing.capture() as captured:
        for n in range(traces):
            request(n)
    batches = []
    for start in range(0, len(captured.spans), batch_size):
        ended = captured.spans[start : start + batch_size]
        roots = [trace_record(s) for s in ended if s.parent_id is None]
        batches.append(Batch(spans=[span_record(s) for s in ended], traces=roots))
    spans = len(captured.spans)
    exporter = OpikExporter(request_timeout=30)
    samples = []
    try:
        for _ in range(rounds + 1):  # the first round warms the connection up
            cpu0 = time.process_time()
            for batch in batches:
                exporter.export(batch)
            samples.append((time.process_time() - cpu0) / spans * 1e6)
    finally:
        exporter.shutdown()
    return statistics.median(samples[1:])


PROMPT = ("Summarise the customer's last three orders and suggest a follow-up. " * 30)[:2048]
ANSWER = ("The customer ordered twice this month; offer free shipping next time. " * 15)[:1024]


@tracekit.track
def chat(prompt: str, temperature: float = 0.2) -> str:
    return ANSWER


def scrub_cost(spans: int) -> tuple[float, float]:
    """Export-thread CPU µs per LLM-sized span: (scrubbing on, scrubbing off)."""
    from tracekit._redact import Redactor

    def one_run() -> float:
        tracekit.configure(exporter="sqlite", db_path=DB, max_queue=1_000_000, batch_size=500)
        assert tracekit.flush(60)
        cpu0, thread0 = time.process_time(), time.thread_time()
        for _ in range(spans):
            chat(PROMPT)
        assert tracekit.flush(600), tracekit.stats()
        return ((time.process_time() - cpu0) - (time.thread_time() - thread0)) / spans * 1e6

    scrubbing = one_run()
    shipped = Redactor.scrub
    Redactor.scrub = lambda self, text: text  # type: ignore[method-assign]
    try:
        plain = one_run()
    finally:
        Redactor.scrub = shipped  # type: ignore[method-assign]
    return scrubbing, plain


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sustained(spans: int) -> None:
    """A long burst with the default SQLite settings: rate, account, memory."""
    tracekit.configure(exporter="sqlite", db_path=DB)
    start_rss = _rss_mb()
    wall0 = time.perf_counter()
    for n in range(spans // 5):
        request(n)
    produced_s = time.perf_counter() - wall0
    tracekit.flush(600)
    wall = time.perf_counter() - wall0
    counts = tracekit.stats()
    print(f"Sustained: {spans:,} spans, default SQLite settings.\n")
    print("| produced | exported | dropped | failed | produce s | end-to-end spans/s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {counts['produced']:,} | {counts['exported']:,} | {counts['dropped']:,} "
        f"| {counts['failed']:,} | {produced_s:.1f} | {counts['exported'] / wall:,.0f} |"
    )
    print(f"\nRSS MB: start {start_rss:.0f}, peak {_peak_rss_mb():.0f}, end {_rss_mb():.0f}\n")


def burst_cost(calls: int) -> float:
    start = time.perf_counter()
    for n in range(calls):
        leaf(n)
    elapsed = time.perf_counter() - start
    assert tracekit.flush(120)
    return elapsed / calls * 1e6


def overhead(rounds: int, calls: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in EXPORTERS}
    for name in EXPORTERS:  # warm up
        configure(name)
        burst_cost(calls)
    for _ in range(rounds):
        for name in EXPORTERS:
            configure(name)
            samples[name].append(burst_cost(calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000, help="traces for SQLite (5 spans)")
    parser.add_argument("--opik-traces", type=int, default=4_000, help="traces for Opik")
    parser.add_argument("--sustained", type=int, default=1_000_000, help="spans, sustained run")
    parser.add_argument("--scrub-spans", type=int, default=20_000, help="LLM-sized spans")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--burst", type=int, default=1_000, help="calls per timed burst")
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs.\n")
    sustained(args.sustained)
    print("| exporter | spans/s (end to end) | export CPU µs/span |")
    print("|---|---|---|")
    for name, traces in (("sqlite", args.traces), ("opik (local server)", args.opik_traces)):
        rate, cpu = throughput(name.split()[0], traces)
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} |")

    cpu = opik_exporter_cost(args.opik_traces)
    print(
        "\nOpik exporter alone (records → payload → orjson → gzip → POST, batches of 500):"
        f" {cpu:.1f} µs process CPU per span"
    )

    on, off = scrub_cost(args.scrub_spans)
    print("\nLLM-sized spans (2 KB prompt, 1 KB answer), SQLite, export CPU µs/span:\n")
    print("| scrubbing on | scrubbing off | ratio |")
    print("|---|---|---|")
    print(f"| {on:.1f} | {off:.1f} | {on / off:.2f} |")

    costs = overhead(args.rounds, args.burst)
    print(f"\nTraced call, medians of {args.rounds} rounds of {args.burst}-call bursts:\n")
    print("| exporter | µs per traced call | x capture-only |")
    print("|---|---|---|")
    for name in EXPORTERS:
        label = "none (capture only)" if name == "none" else name
        print(f"| {label} | {costs[name]:.2f} | {costs[name] / costs['none']:.2f} |")
    tracekit.configure(exporter="none")
    SERVER.terminate()


if __name__ == "__main__":
    main()
