"""A local HTTP endpoint that accepts anything, so peers' exporters run for real offline."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"{}"
        self.send_response(200 if self.command == "GET" else 204 if "batch" in self.path else 201)
        if self.command == "GET":
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_header("Content-Length", "0")
            self.end_headers()

    do_GET = do_POST = do_PATCH = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_sink() -> tuple[str, ThreadingHTTPServer]:
    """Serve on 127.0.0.1 on a free port; returns the base URL and the server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
