"""What `tracekit.instrument_litellm()` adds to a LiteLLM call and to each streamed chunk.

Run: `make bench-litellm` (or `.venv/bin/python benchmarks/litellm_overhead.py`).

Per call: `litellm.completion(mock_response=...)` under a tracekit span, with
and without instrumenting, in interleaved rounds (medians of the calling
thread's CPU time); LiteLLM's own cost is the uninstrumented call. Exporter
"none": export, where the LLM span's result is read, is measured in export.py.

Hooks alone: tracekit's two hooks on a call's path (`function_setup`,
`update_response_metadata`) replayed with a real call's arguments and result
around stand-ins, so LiteLLM's own work, which varies by more than tracekit
adds, is left out.

Per chunk: the wrapper tracekit puts around `CustomStreamWrapper.__next__`,
timed around a trivial `__next__` so LiteLLM's own per-chunk work (which is
large and noisy) does not hide it; plus, for scale, LiteLLM's own time per
chunk of a mock stream.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPIK_SENTRY_ENABLE", "false")
os.environ.setdefault("OPIK_ANALYTICS_ENABLE", "false")

import litellm
import wrapt

import tracekit
from tracekit.integrations import litellm as integration

MESSAGES = [{"role": "user", "content": "hi"}]


def call_cost(calls: int) -> float:
    """CPU time of the calling thread per call, µs: what the caller pays.

    CPU time, not wall time: other processes on a busy machine do not count,
    and neither do LiteLLM's own logging threads.
    """
    start = time.thread_time()
    with tracekit.span("agent"):
        for _ in range(calls):
            litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="hello")
    return (time.thread_time() - start) / calls * 1e6


def per_call(rounds: int, calls: int) -> tuple[float, float]:
    plain: list[float] = []
    traced: list[float] = []
    call_cost(calls)  # warm up both paths
    tracekit.instrument_litellm()
    call_cost(calls)
    tracekit.uninstrument_litellm()
    for _ in range(rounds):
        plain.append(call_cost(calls))
        tracekit.instrument_litellm()
        traced.append(call_cost(calls))
        tracekit.uninstrument_litellm()
    return statistics.median(plain), statistics.median(traced)


class _Stream:
    """Stands in for CustomStreamWrapper: a __next__ that does nothing."""

    def __next__(self) -> int:
        return 1


class _TracedStream:
    def __next__(self) -> int:
        return 1


wrapt.wrap_function_wrapper(_TracedStream, "__next__", integration._on_next)


def per_chunk_wrapper(chunks: int, rounds: int) -> float:
    plain, traced = _Stream(), _TracedStream()
    traced.__dict__[integration.STATE_ATTRIBUTE] = None  # like a stream with its call
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(chunks):
            next(plain)
        middle = time.perf_counter()
        for _ in range(chunks):
            next(traced)
        end = time.perf_counter()
        samples.append(((end - middle) - (middle - start)) / chunks * 1e6)
    return statistics.median(samples)


class _LoggingStandIn:
    """What tracekit reads of LiteLLM's logging object after the call's setup."""

    def __init__(self, call_id: str, details: dict[str, Any]) -> None:
        self.litellm_call_id = call_id
        self.model_call_details = details


def hook_cost(calls: int, rounds: int) -> float:
    """tracekit's own work per call, µs of the caller's CPU: its two hooks replayed.

    A real call's arguments to `function_setup` and its result are captured
    once; the hooks then run around stand-ins that return at once, so
    LiteLLM's own (large, noisy) work is not in the figure. What remains is
    everything tracekit adds to the caller's path of a plain call.
    """
    seen: dict[str, Any] = {}

    def spy(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.setdefault("setup", (args, dict(kwargs)))
        return wrapped(*args, **kwargs)

    import litellm.utils as litellm_utils

    original = litellm_utils.function_setup
    wrapt.wrap_function_wrapper(litellm_utils, "function_setup", spy)
    try:
        result = litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="hi")
    finally:
        litellm_utils.function_setup = original
    setup_args, setup_kwargs = seen["setup"]
    details = {"custom_llm_provider": "openai"}
    samples = []
    with tracekit.span("agent"):
        for round_ in range(rounds):
            start = time.thread_time()
            for n in range(calls):
                call_id = f"bench-{round_}-{n}"
                logging_obj = _LoggingStandIn(call_id, details)
                kwargs = {**setup_kwargs, "litellm_call_id": call_id}
                integration._on_function_setup(
                    lambda *a, obj=logging_obj, **k: (obj, k), None, setup_args, kwargs
                )
                integration._on_response(lambda *a, **k: None, None, (result, logging_obj), {})
            samples.append((time.thread_time() - start) / calls * 1e6)
    return statistics.median(samples)


def litellm_per_chunk() -> float:
    text = "".join(f"w{i} " for i in range(300))
    stream = litellm.completion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response=text, stream=True
    )
    start = time.perf_counter()
    count = sum(1 for _ in stream)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    tracekit.configure(exporter="none")
    plain, traced = per_call(args.rounds, args.calls)
    tracekit.instrument_litellm()
    hooks_us = hook_cost(1000, args.rounds)
    tracekit.uninstrument_litellm()
    wrapper_us = per_chunk_wrapper(200_000, args.rounds)
    own_chunk_us = litellm_per_chunk()
    print(f"Medians of {args.rounds} interleaved rounds.\n")
    print("| measure | LiteLLM alone | added by tracekit | share |")
    print("|---|---|---|---|")
    added = traced - plain
    print(f"| completion(mock_response) | {plain:.0f} µs | {added:.1f} µs | {added / plain:.2%} |")
    print(
        f"| tracekit's hooks alone, per call | {plain:.0f} µs | {hooks_us:.1f} µs | "
        f"{hooks_us / plain:.2%} |"
    )
    print(
        f"| per streamed chunk | {own_chunk_us:.0f} µs | {wrapper_us:.2f} µs | "
        f"{wrapper_us / own_chunk_us:.3%} |"
    )


if __name__ == "__main__":
    main()
