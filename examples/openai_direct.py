"""The openai SDK, traced: each call is one LLM span under the function that made it.

`tracekit.instrument_openai()` once; every chat, Responses and embeddings
call made under an active span is then an `llm` span with the messages,
the reply, tokens and (with LiteLLM installed) the cost from LiteLLM's price
list — streams included.

Runs offline: the client below talks to a stand-in for OpenAI inside this
process (httpx's in-process transport answering as OpenAI does). To talk to
OpenAI, drop `http_client=` and set OPENAI_API_KEY. Spans go to the local
SQLite file; `tracekit show` prints the tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _offline  # noqa: F401  (keeps every byte on this machine)
import httpx
import openai

import tracekit

MODEL = "gpt-4o-mini"
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def stand_in_for_openai(request: httpx.Request) -> httpx.Response:
    """Answers `/chat/completions` as OpenAI does, streamed or not."""
    asked = json.loads(request.content)
    message = {"role": "assistant", "content": "Paris, on the Seine."}
    base = {"id": "chatcmpl-1", "created": 0, "model": f"{MODEL}-2024-07-18"}
    if not asked.get("stream"):
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        reply = base | {"object": "chat.completion", "choices": [choice], "usage": USAGE}
        return httpx.Response(200, json=reply)
    chunks = [
        base | {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
        for delta in ({"role": "assistant", "content": "Paris, "}, {"content": "on the Seine."})
    ]
    chunks.append(base | {"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


client = openai.OpenAI(
    api_key="sk-example-not-a-real-key-000000",
    http_client=httpx.Client(transport=httpx.MockTransport(stand_in_for_openai)),
)


@tracekit.track
def answer(question: str) -> str:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], temperature=0.2
    )
    return reply.choices[0].message.content or ""


@tracekit.track
def answer_streamed(question: str) -> str:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": question}],
        stream=True,
        stream_options={"include_usage": True},  # else the server sends no token counts
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


@tracekit.track(project_name="openai-example")
def chat() -> None:
    print(answer("Where is the Louvre?"))
    print(answer_streamed("And the Eiffel Tower?"))


def main() -> None:
    tracekit.instrument_openai()
    chat()
    print("exported:", tracekit.flush(10))
    tracekit_cli = Path(sys.executable).parent / "tracekit"
    subprocess.run([str(tracekit_cli), "show", "last"], check=True)


if __name__ == "__main__":
    main()
