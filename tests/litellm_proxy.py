"""A real LiteLLM proxy for the test suite, on 127.0.0.1 (DESIGN.md §6).

`litellm --config ...` with one mock model (`mock-gpt`, answering "hello
from proxy" through LiteLLM's `mock_response`, streaming included), its Opik
callback pointed at the in-suite Opik server, no database. Started once per
session (it takes 10-20 s), stopped by PID.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import tracekit
from tests.polling import until

MASTER_KEY = "sk-tracekit-suite-9f8e7d6c5b4a39281706"
MODEL = "mock-gpt"
ANSWER = "hello from proxy"
# A mock model under a name LiteLLM's price list knows: answers carry that name.
PRICED_MODEL = "gpt-4o-mini"
STARTUP_SECONDS = 120

CONFIG = f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/gpt-3.5-turbo
      mock_response: "{ANSWER}"
      api_key: sk-not-used
  - model_name: {PRICED_MODEL}
    litellm_params:
      model: openai/{PRICED_MODEL}
      mock_response: "{ANSWER}"
      api_key: sk-not-used
  - model_name: mock-embedding
    litellm_params:
      model: openai/text-embedding-3-small
      mock_response: [0.1, 0.2, 0.3]
      api_key: sk-not-used
litellm_settings:
  callbacks: ["opik"]
general_settings:
  master_key: {MASTER_KEY}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiteLLMProxy:
    """One proxy process: `url` is its base URL, `api_key` its master key."""

    def __init__(self, folder: Path, opik_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = MASTER_KEY
        config = folder / "config.yaml"
        config.write_text(CONFIG)
        self.log = folder / "proxy.log"
        env = {
            **os.environ,
            "OPIK_URL_OVERRIDE": opik_url,
            "OPIK_SENTRY_ENABLE": "false",
            "OPIK_ANALYTICS_ENABLE": "false",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "DISABLE_ADMIN_UI": "True",
            "LITELLM_TELEMETRY": "False",
        }
        env.pop("DATABASE_URL", None)
        command = [
            str(Path(sys.executable).parent / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the LiteLLM proxy exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_until_up(self) -> None:
        if not until(self._answers, STARTUP_SECONDS):
            self.stop()
            raise RuntimeError(f"the LiteLLM proxy did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)


def answer_in_a_trace(run: Callable[[], str], **context: Any) -> tuple[str, str]:
    """`run()` inside a tracked `answer()`, under `tracekit.context(**context)`: its result
    and the trace id (the proxy's spans of an earlier test may still arrive: select by it)."""
    trace_ids: list[str] = []

    @tracekit.track
    def answer() -> str:
        trace = tracekit.current_trace()
        assert trace is not None
        trace_ids.append(trace.id)
        return run()

    with tracekit.context(**context):
        result = answer()
    (trace_id,) = trace_ids
    return result, trace_id
