"""A local server speaking the part of Opik's REST API that the opik SDK and
LiteLLM's Opik callback use, recording what arrives (DESIGN.md §6).

It merges records that arrive twice under one id (a start record, then an
end record; POST then PATCH), un-gzips bodies, and can be told to fail:
`mode = "error"` answers 500 to every write, `mode = "hang"` holds writes
unanswered until `release()` (or `hang_limit` seconds), `mode = "slow"` answers
each write after `slow_delay` seconds.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "error", "hang", "slow"]


class OpikServer:
    """Start with `start()`; `url` is what OPIK_URL_OVERRIDE should be."""

    def __init__(self, hang_limit: float = 20.0) -> None:
        self.traces: dict[str, dict[str, Any]] = {}
        self.spans: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        # PUT {spans,traces}/feedback-scores: every score item as it arrived, in order.
        self.span_scores: list[dict[str, Any]] = []
        # Traces of earlier tests: a span of theirs that arrives after a reset
        # (the LiteLLM proxy's Opik callback sends late) is not this test's.
        self._earlier_traces: set[str] = set()
        self.trace_scores: list[dict[str, Any]] = []
        self.mode: Mode = "ok"
        self.hang_limit = hang_limit
        self.slow_delay = 0.05
        self._released = threading.Event()
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> OpikServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def reset(self, mode: Mode = "ok") -> None:
        with self._changed:
            self._earlier_traces.update(self.traces)
            self._earlier_traces.update(str(s.get("trace_id")) for s in self.spans.values())
            self.traces.clear()
            self.spans.clear()
            self.requests.clear()
            self.span_scores.clear()
            self.trace_scores.clear()
            self.mode = mode
            self._released.clear()

    def release(self) -> None:
        """Let held ("hang") requests go (they are then answered 500)."""
        self._released.set()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block until `condition()` holds after some request arrived, or `timeout`."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def scores_of(self, kind: str, target_id: str) -> dict[str, dict[str, Any]]:
        """The scores of span or trace `target_id` by name, a later one replacing (as Opik)."""
        with self._changed:
            arrived = self.trace_scores if kind == "trace" else self.span_scores
            return {s["name"]: s for s in arrived if s.get("id") == target_id}

    def spans_of(self, trace_id: str) -> list[dict[str, Any]]:
        with self._changed:
            return [s for s in self.spans.values() if s.get("trace_id") == trace_id]

    # -- request handling ---------------------------------------------------------

    def _record(self, kind: str, items: list[dict[str, Any]]) -> None:
        store = self.traces if kind == "traces" else self.spans
        for item in items:
            trace_id = item.get("id") if kind == "traces" else item.get("trace_id")
            if trace_id in self._earlier_traces:
                continue
            merged = store.setdefault(item["id"], {})
            merged.update({k: v for k, v in item.items() if v is not None})

    def _handle(self, method: str, path: str, body: Any) -> int:
        parts = path.split("?")[0].strip("/").split("/")
        with self._changed:
            self.requests.append((method, "/".join(parts)))
        if method == "GET":
            return 200
        if self.mode == "hang":
            self._released.wait(self.hang_limit)
            return 500
        if self.mode == "error":
            return 500
        if self.mode == "slow":
            self._released.wait(self.slow_delay)
        # api/v1/private/{traces,spans}[/batch | /{id}]
        if (
            len(parts) >= 4
            and parts[:3] == ["api", "v1", "private"]
            and parts[3]
            in (
                "traces",
                "spans",
            )
        ):
            kind = parts[3]
            with self._changed:
                if len(parts) == 5 and parts[4] == "feedback-scores" and method == "PUT":
                    scores = self.trace_scores if kind == "traces" else self.span_scores
                    scores.extend(body.get("scores", []))
                    status = 204
                elif len(parts) == 5 and parts[4] == "batch":
                    self._record(kind, body.get(kind, []))
                    status = 204
                elif len(parts) == 4 and method == "POST":
                    self._record(kind, [body])
                    status = 201
                elif len(parts) == 5 and method == "PATCH":
                    self._record(kind, [{**body, "id": parts[4]}])
                    status = 204
                else:
                    status = 204
                self._changed.notify_all()
            return status
        with self._changed:
            self._changed.notify_all()
        return 204

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                body = json.loads(raw) if raw else {}
                status = server._handle(self.command, self.path, body)
                payload = b"{}" if status == 200 else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a "hang" test): nothing to answer

            do_GET = do_POST = do_PATCH = do_PUT = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
