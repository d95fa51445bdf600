"""LiteLLM in one line: `tracekit.instrument_litellm()`, then no `current_span_data` anywhere.

Before (Opik's docs), in every call:

    litellm.completion(model=..., messages=...,
                       metadata={"opik": {"current_span_data": get_current_span_data(),
                                          "project_name": ..., "thread_id": ...}})

After: decorate your functions and call LiteLLM as usual. `mock_response`
plays the model, so this runs with no key and no server.

Run: `.venv/bin/python examples/litellm_app.py`.
"""

from __future__ import annotations

import _offline  # noqa: F401  (before litellm: no traffic beyond this machine)
import litellm

import tracekit
from tracekit.testing import capture

tracekit.instrument_litellm()


@tracekit.track(type="tool")
def search(query: str) -> list[str]:
    return [f"a page about {query}"]


@tracekit.track
def answer(question: str) -> str:
    pages = search(question)
    response = litellm.completion(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": f"Use: {pages}"},
            {"role": "user", "content": question},
        ],
        mock_response="Tracing shows what your app did.",
    )
    return str(response.choices[0].message.content)


def main() -> None:
    with capture() as captured, tracekit.context(thread_id="conversation-7"):
        print(answer("what is tracing?"))
    print(captured.tree())


if __name__ == "__main__":
    main()
