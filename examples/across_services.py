"""One trace across two services: the caller sends its span in two headers.

The "service" here is a small HTTP server on 127.0.0.1 in a thread of this
process (a thread starts with no active span, as another process would); it
continues the caller's trace with `tracekit.continue_trace(headers)`. The
headers are Opik's own (`opik_trace_id`, `opik_parent_span_id`), so either
side may as well be an `@opik.track` service. No API key, no server: spans go
to the local SQLite file and `tracekit show` prints one tree.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import tracekit


@tracekit.track(type="tool")
def look_up_order(order_id: str) -> dict[str, str]:
    return {"order": order_id, "status": "shipped"}


class OrderService(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with tracekit.continue_trace(self.headers):  # joins the caller's trace
            body = str(look_up_order(self.path.rsplit("/", 1)[-1])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@tracekit.track
def answer(question: str, service_url: str) -> str:
    request = urllib.request.Request(
        f"{service_url}/orders/42", headers=tracekit.distributed_headers()
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return f"Your order: {response.read().decode()}"


def main() -> None:
    tracekit.configure(project_name="across-services")
    server = ThreadingHTTPServer(("127.0.0.1", 0), OrderService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        print(answer("Where is my order?", f"http://127.0.0.1:{server.server_address[1]}"))
    finally:
        server.shutdown()
    print("exported:", tracekit.flush(10))
    tracekit_cli = Path(sys.executable).parent / "tracekit"
    subprocess.run([str(tracekit_cli), "show", "last"], check=True)


if __name__ == "__main__":
    main()
