"""A LiteLLM call's credentials reach neither the SQLite file, nor Opik, nor a log line.

Each call goes over HTTP to a local OpenAI-compatible server that refuses it
with a 401 quoting the Authorization header back, as providers do
("Incorrect API key provided: ..."): the error then crosses the LLM span and
the enclosing `@tracekit.track` span.
"""

from __future__ import annotations

import base64
import gc
import json
import threading
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import litellm
import pytest

import tracekit
from tests.opik_server import OpikServer

# litellm 1.105 runs OpikLogger's failure hook in an event loop it never closes.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "openai/gpt-4o-mini"


class _Refusing(BaseHTTPRequestHandler):
    """Answers every request 401, quoting the credential it got (Basic decoded) and path."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        quoted = self.headers.get("Authorization", "")
        if quoted.startswith("Basic "):  # httpx sends api_base userinfo this way
            quoted = base64.b64decode(quoted[6:]).decode()
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {quoted} (for {self.path})",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The refusing provider's base URL, on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["tracekit-logs-llm-spans", "litellm-opik-callback-on"])
def setup(
    request: pytest.FixtureRequest,
    opik_server: OpikServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[tuple[Path, OpikServer]]:
    """SQLite export, LiteLLM instrumented; with or without LiteLLM's Opik callback."""
    opik_server.reset()
    litellm.logging_callback_manager._reset_all_callbacks()
    if request.param == "litellm-opik-callback-on":
        litellm.callbacks = ["opik"]
    tracekit.configure(exporter="sqlite", db_path=tmp_path / "t.db", flush_interval=0.01)
    tracekit.instrument_litellm()
    caplog.set_level("DEBUG", logger="tracekit")
    yield tmp_path, opik_server
    tracekit.uninstrument_litellm()
    litellm.logging_callback_manager._reset_all_callbacks()
    tracekit.configure(exporter="none")
    with warnings.catch_warnings():  # the event loops litellm leaves unclosed, now
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@tracekit.track
def agent(call: Callable[[], Any]) -> Any:
    return call()


def assert_nowhere(
    secret: str, quoted: str, setup: tuple[Path, OpikServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The caller's exception quotes `secret`; the file, Opik and the logs do not."""
    assert secret in quoted  # the caller's exception is untouched
    directory, opik_server = setup
    assert tracekit.flush(15)
    stored = b"".join(path.read_bytes() for path in sorted(directory.glob("t.db*")))
    assert b"Incorrect API key provided" in stored  # the error itself was stored
    assert secret.encode() not in stored
    assert secret not in repr((opik_server.spans, opik_server.traces))
    assert secret not in caplog.text


def failing(**kwargs: Any) -> Callable[[], Any]:
    def call() -> Any:
        with pytest.raises(litellm.AuthenticationError) as raised:
            litellm.completion(model=MODEL, messages=MESSAGES, **kwargs)
        return str(raised.value)

    return call


def test_api_key_argument(
    provider: str, setup: tuple[Path, OpikServer], caplog: pytest.LogCaptureFixture
) -> None:
    """api_key= quoted back in the provider's error is stored nowhere."""
    secret = "sk-proj-ArgKey9Tz4Lm2Qw8Xc5Vb"
    quoted = agent(failing(api_key=secret, api_base=f"http://{provider}/v1"))
    assert_nowhere(secret, quoted, setup, caplog)


def test_key_from_the_environment(
    provider: str,
    setup: tuple[Path, OpikServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key LiteLLM read from OPENAI_API_KEY is stored nowhere."""
    secret = "envkey-Hq3Lw9Zt7Ys1Nb6Mk"  # no sk- prefix: found as the env var's value
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    quoted = agent(failing(api_base=f"http://{provider}/v1"))
    assert_nowhere(secret, quoted, setup, caplog)


def test_key_in_extra_headers(
    provider: str, setup: tuple[Path, OpikServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A key passed as extra_headers={"Authorization": "Bearer ..."} is stored nowhere."""
    secret = "hdr-Rt5Gy7Uj9Ik3Ol1Pz"
    quoted = agent(
        failing(
            api_key="placeholder",
            api_base=f"http://{provider}/v1",
            extra_headers={"Authorization": f"Bearer {secret}"},
        )
    )
    assert_nowhere(secret, quoted, setup, caplog)


def test_password_in_api_base_userinfo(
    provider: str, setup: tuple[Path, OpikServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A password in api_base (http://user:secret@host) is stored nowhere."""
    secret = "urlpass-Wq7Ez3Rx1Cv"
    quoted = agent(failing(api_key="placeholder", api_base=f"http://user:{secret}@{provider}/v1"))
    assert_nowhere(secret, quoted, setup, caplog)


def test_unregistered_token_echoed_by_the_server(
    provider: str, setup: tuple[Path, OpikServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A key tracekit never saw (set on litellm itself) is caught by its Bearer shape."""
    secret = "opaque-Yw7Kp2Lq9Rz5Xc1"
    previous = litellm.api_key
    litellm.api_key = secret
    try:
        quoted = agent(failing(api_base=f"http://{provider}/v1"))
    finally:
        litellm.api_key = previous
    assert_nowhere(secret, quoted, setup, caplog)
