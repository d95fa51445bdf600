"""Calls through a LiteLLM proxy join your trace: one LLM span per call, the proxy's.

This script starts nothing itself. Start a local proxy with a mock model
first (no API key needed), logging to the same Opik as this script:

    cat > proxy.yaml <<'YAML'
    model_list:
      - model_name: mock-gpt
        litellm_params:
          model: openai/gpt-3.5-turbo
          mock_response: "hello from proxy"
          api_key: sk-not-used
    litellm_settings:
      callbacks: ["opik"]
    general_settings:
      master_key: sk-local-proxy-key-0123456789abcdef
    YAML
    LITELLM_LOCAL_MODEL_COST_MAP=True OPIK_URL_OVERRIDE=http://127.0.0.1:5173/api/ \\
        .venv/bin/litellm --config proxy.yaml --host 127.0.0.1 --port 4000

then, with OPIK_URL_OVERRIDE set the same way (or an Opik API key):

    PROXY_URL=http://127.0.0.1:4000 PROXY_KEY=sk-local-proxy-key-0123456789abcdef \\
        .venv/bin/python examples/proxy_client.py

In Opik: one trace `answer`, under it `litellm_proxy.completion` (the
client side), and under that the proxy's LLM span with tokens and cost.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: LiteLLM's own prices

import litellm

import tracekit


def _through_proxy(question: str, stream: bool) -> object:
    return litellm.completion(
        model="litellm_proxy/mock-gpt",
        api_base=os.environ["PROXY_URL"],
        api_key=os.environ["PROXY_KEY"],
        messages=[{"role": "user", "content": question}],
        stream=stream,
    )


@tracekit.track
def answer(question: str) -> str:
    reply: Any = _through_proxy(question, stream=False)
    return str(reply.choices[0].message.content)


@tracekit.track
def answer_streaming(question: str) -> str:
    chunks: Any = _through_proxy(question, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


def main() -> None:
    tracekit.configure(exporter="opik", project_name="proxy-example")
    tracekit.instrument_litellm()
    with tracekit.context(tags=["example"]):
        print(answer("What does the proxy say?"))
        print(answer_streaming("And streaming?"))
    print("exported:", tracekit.flush(10))


if __name__ == "__main__":
    main()
