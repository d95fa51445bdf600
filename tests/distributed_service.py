"""A tiny HTTP service for the cross-process distributed-trace tests.

    python -m tests.distributed_service tracekit|opik

Prints its port, then answers `GET /work` by running a traced `handle()`
that continues the caller's trace from the request headers — with
`tracekit.continue_trace` or `@opik.track(opik_distributed_trace_headers=)` —
and flushes before answering, so the spans are at the Opik server when the
caller gets its response. Everything stays on 127.0.0.1 (OPIK_URL_OVERRIDE
comes from the test).
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _tracekit_handler() -> Any:
    import tracekit

    tracekit.configure(exporter="opik", flush_interval=0.05)

    @tracekit.track
    def handle(path: str) -> str:
        return "done by tracekit"

    def serve(headers: dict[str, str], path: str) -> str:
        with tracekit.continue_trace(headers):
            result = handle(path)
        tracekit.flush(10)
        return result

    return serve


def _opik_handler() -> Any:
    import opik

    @opik.track
    def handle(path: str) -> str:
        return "done by opik"

    def serve(headers: dict[str, str], path: str) -> str:
        result = handle(path, opik_distributed_trace_headers=headers)
        opik.flush_tracker()
        return str(result)

    return serve


def main() -> None:
    serve = _tracekit_handler() if sys.argv[1] == "tracekit" else _opik_handler()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            body = serve(headers, self.path).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
