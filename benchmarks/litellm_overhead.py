"""What `tracekit.instrument_litellm()` costs the caller of a LiteLLM call.

Run: `make bench-litellm` (or `.venv/bin/python benchmarks/litellm_overhead.py`).

Every figure is CPU time of the calling thread (`time.thread_time`), the
median of interleaved rounds: other processes on a busy machine do not
count, and neither do LiteLLM's logging threads or tracekit's export thread
(what moved there is shown on a row of its own). Exporter "none".

- `completion(mock_response)`, not instrumented: LiteLLM's own cost per call,
  the yardstick (the goal: tracekit's share <= 1 %).
- tracekit on the caller's path, replayed: the two hooks every call passes
  through (`function_setup`, `update_response_metadata`), through the same
  wrapt wrappers `instrument_litellm()` installs, with a real call's
  arguments and result, around stand-ins that return at once. Everything
  tracekit runs on the caller's thread, and none of LiteLLM's own work,
  which varies between rounds by more than tracekit adds.
- tracekit on the caller's path, in real calls: the same two hooks timed
  inside real `completion(mock_response)` calls (their time less LiteLLM's
  time inside them), less the same timer around hooks that only pass the
  call on (so wrapt's own dispatch is not in this row).
- Whole call, instrumented minus not: paired rounds, with the spread (25th
  to 75th percentile) of the difference: LiteLLM's own noise, for scale.
- Export thread, per call: describing the LLM span from what its result held
  (output, usage, cost, provider). Not on the caller's path.
- Per `@tracekit.track` call: a tracked function returning a LiteLLM
  response, instrumented minus not: what instrumenting adds to tracked
  calls that make no LiteLLM call (no `@opik.track` in the program).
- Per streamed chunk: the wrapper around `CustomStreamWrapper.__next__`, timed
  around a trivial `__next__`; LiteLLM's own time per chunk for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPIK_SENTRY_ENABLE", "false")
os.environ.setdefault("OPIK_ANALYTICS_ENABLE", "false")

import litellm
import litellm.utils as litellm_utils
import wrapt

import tracekit
import tracekit.testing
from tracekit.integrations import litellm as integration

MESSAGES = [{"role": "user", "content": "hi"}]
CLOCK = time.thread_time_ns
Hook = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _spread(samples: list[float]) -> tuple[float, float]:
    quartiles = statistics.quantiles(samples, n=4)
    return quartiles[0], quartiles[2]


def _complete() -> Any:
    return litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="hello")


def call_cost(calls: int) -> float:
    """Thread CPU per `completion(mock_response)` under a tracekit span, µs."""
    start = time.thread_time()
    with tracekit.span("agent"):
        for _ in range(calls):
            _complete()
    return (time.thread_time() - start) / calls * 1e6


# -- tracekit's hooks replayed around stand-ins ------------------------------------------


class _LoggingStandIn:
    """What tracekit reads of LiteLLM's logging object after the call's setup."""

    def __init__(self, call_id: str) -> None:
        self.litellm_call_id = call_id
        self.model_call_details = {"custom_llm_provider": "openai"}


class _Recorded:
    """A real call's arguments to both hooked functions, and its result."""

    def __init__(self) -> None:
        seen: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

        def spy(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            seen.setdefault(wrapped.__name__, (args, dict(kwargs)))
            return wrapped(*args, **kwargs)

        originals = {name: getattr(litellm_utils, name) for name in _HOOKED}
        for name in _HOOKED:
            wrapt.wrap_function_wrapper(litellm_utils, name, spy)
        try:
            self.result = _complete()
        finally:
            for name, original in originals.items():
                setattr(litellm_utils, name, original)
        self.setup_args, self.setup_kwargs = seen["function_setup"]
        self.response_kwargs = seen["update_response_metadata"][1]


_HOOKED = ("function_setup", "update_response_metadata")


def replay(recorded: _Recorded, calls: int, tag: str) -> float:
    """Thread CPU of tracekit's two hooks per call, through wrapt as installed, µs."""
    logging_objects = [_LoggingStandIn(f"bench-{tag}-{n}") for n in range(calls)]
    setup_kwargs = [
        {**recorded.setup_kwargs, "litellm_call_id": obj.litellm_call_id} for obj in logging_objects
    ]
    next_object: Iterator[_LoggingStandIn] = iter(logging_objects)

    def setup_stand_in(*args: Any, **kwargs: Any) -> Any:
        return next(next_object), kwargs

    def response_stand_in(*args: Any, **kwargs: Any) -> None:
        return None

    setup = wrapt.FunctionWrapper(setup_stand_in, integration._on_function_setup)
    respond = wrapt.FunctionWrapper(response_stand_in, integration._on_response)
    result, response_kwargs, args = recorded.result, recorded.response_kwargs, recorded.setup_args
    with tracekit.span("agent"):
        start = time.thread_time()
        for n in range(calls):
            logging_obj, _ = setup(*args, **setup_kwargs[n])
            respond(**{**response_kwargs, "result": result, "logging_obj": logging_obj})
        end = time.thread_time()
    # The stand-ins' own work and the loop, measured the same way, are not tracekit's.
    next_object = iter(logging_objects)
    start_bare = time.thread_time()
    for n in range(calls):
        logging_obj, _ = setup_stand_in(*args, **setup_kwargs[n])
        response_stand_in(**{**response_kwargs, "result": result, "logging_obj": logging_obj})
    bare = time.thread_time() - start_bare
    return ((end - start) - bare) / calls * 1e6


def export_side_cost(recorded: _Recorded, calls: int) -> float:
    """Thread CPU per call of describing the LLM span from its result (the export thread's), µs."""
    with tracekit.testing.capture() as captured:
        replay(recorded, calls, "export")
    spans = [span for span in captured.spans if span.type == "llm"]
    start = time.thread_time()
    for span in spans:
        span.describe_now()  # type: ignore[attr-defined]
    return (time.thread_time() - start) / len(spans) * 1e6


# -- the same hooks timed inside real calls ----------------------------------------------


class _HookTimer:
    """Thread CPU spent in hooks, less the time of the LiteLLM code they wrap."""

    def __init__(self) -> None:
        self.own_ns = 0

    def around(self, hook: Hook) -> Hook:
        clock = CLOCK

        def timed_hook(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            inside = 0

            def timed_wrapped(*a: Any, **k: Any) -> Any:
                nonlocal inside
                begun = clock()
                try:
                    return wrapped(*a, **k)
                finally:
                    inside += clock() - begun

            begun = clock()
            try:
                return hook(timed_wrapped, instance, args, kwargs)
            finally:
                self.own_ns += clock() - begun - inside

        return timed_hook


def _pass_on(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs)


def in_call_cost(calls: int, passing_on: bool) -> float:
    """Thread CPU per real call inside tracekit's two hooks (or pass-on hooks), µs."""
    timer = _HookTimer()
    original = integration._HOOKS
    integration._HOOKS = tuple(
        (module, path, timer.around(_pass_on if passing_on else wrapper), required)
        if module == "litellm.utils"
        else (module, path, wrapper, required)
        for module, path, wrapper, required in original
    )
    try:
        tracekit.instrument_litellm()
        with tracekit.span("agent"):
            for _ in range(calls):
                _complete()
    finally:
        tracekit.uninstrument_litellm()
        integration._HOOKS = original
    return timer.own_ns / calls / 1e3


# -- rounds ------------------------------------------------------------------------------


def per_call(rounds: int, calls: int, recorded: _Recorded) -> dict[str, list[float]]:
    """Interleaved rounds of every per-call measure."""
    samples: dict[str, list[float]] = {
        k: [] for k in ("plain", "traced", "replay", "in_call", "pass_on")
    }
    for _ in range(2):  # warm up every path
        call_cost(calls)
        in_call_cost(calls, passing_on=False)
        in_call_cost(calls, passing_on=True)
        tracekit.instrument_litellm()
        call_cost(calls)
        replay(recorded, calls, "warm")
        tracekit.uninstrument_litellm()
    for round_ in range(rounds):
        samples["plain"].append(call_cost(calls))
        tracekit.instrument_litellm()
        samples["traced"].append(call_cost(calls))
        samples["replay"].append(replay(recorded, calls * 10, str(round_)))
        tracekit.uninstrument_litellm()
        samples["in_call"].append(in_call_cost(calls, passing_on=False))
        samples["pass_on"].append(in_call_cost(calls, passing_on=True))
    return samples


def tracked_call_cost(rounds: int, calls: int, response: Any) -> list[float]:
    """What instrumenting adds to a `@tracekit.track` call that returns a response, µs."""

    @tracekit.track
    def answer() -> Any:
        return response

    def cost() -> float:
        with tracekit.span("agent"):
            start = time.thread_time()
            for _ in range(calls):
                answer()
            return (time.thread_time() - start) / calls * 1e6

    added = []
    for _ in range(rounds):
        plain = cost()
        tracekit.instrument_litellm()
        added.append(cost() - plain)
        tracekit.uninstrument_litellm()
    return added


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
        start = time.thread_time()
        for _ in range(chunks):
            next(plain)
        middle = time.thread_time()
        for _ in range(chunks):
            next(traced)
        end = time.thread_time()
        samples.append(((end - middle) - (middle - start)) / chunks * 1e6)
    return _median(samples)


def litellm_per_chunk(rounds: int) -> float:
    text = "".join(f"w{i} " for i in range(300))
    samples = []
    for _ in range(rounds):
        stream = litellm.completion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response=text, stream=True
        )
        start = time.thread_time()
        count = sum(1 for _ in stream)
        samples.append((time.thread_time() - start) / count * 1e6)
    return _median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    tracekit.configure(exporter="none")
    recorded = _Recorded()
    samples = per_call(args.rounds, args.calls, recorded)
    tracekit.instrument_litellm()
    export_us = export_side_cost(recorded, args.calls * 10)
    tracekit.uninstrument_litellm()
    tracked = tracked_call_cost(args.rounds, 20_000, recorded.result)
    wrapper_us = per_chunk_wrapper(200_000, args.rounds)
    own_chunk_us = litellm_per_chunk(5)

    plain = _median(samples["plain"])
    replayed = _median(samples["replay"])
    in_call = _median([a - b for a, b in zip(samples["in_call"], samples["pass_on"], strict=True)])
    whole = [b - a for a, b in zip(samples["plain"], samples["traced"], strict=True)]
    low, high = _spread(whole)

    def share(us: float) -> str:
        return f"{us / plain:.2%}"

    print(f"Medians of {args.rounds} interleaved rounds; calling thread's CPU time.\n")
    print("| per LiteLLM call | µs | share of the call |")
    print("|---|---|---|")
    print(f"| `completion(mock_response)`, not instrumented | {plain:.0f} | 100% |")
    print(f"| tracekit, caller's path (hooks replayed) | {replayed:.1f} | {share(replayed)} |")
    print(f"| tracekit, caller's path (in real calls) | {in_call:.1f} | {share(in_call)} |")
    print(
        f"| whole call, instrumented minus not (quartiles {low:+.0f} to {high:+.0f}) "
        f"| {_median(whole):+.0f} | {share(_median(whole))} |"
    )
    print(f"| export thread: describing the LLM span (not the caller's) | {export_us:.1f} | - |")
    print()
    print("| elsewhere | µs | share |")
    print("|---|---|---|")
    print(
        f"| per `@tracekit.track` call returning a response, added by instrumenting "
        f"| {_median(tracked):+.2f} | - |"
    )
    print(
        f"| per streamed chunk (LiteLLM's own: {own_chunk_us:.0f} µs) | {wrapper_us:.2f} | "
        f"{wrapper_us / own_chunk_us:.3%} |"
    )


if __name__ == "__main__":
    main()
