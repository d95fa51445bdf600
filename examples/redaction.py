"""What never leaves the process: secrets by key name and by value, and hostile values.

    tracekit.configure(secrets=["my-db-password-1234"])   # values you know are secret

Run: `.venv/bin/python examples/redaction.py`. It traces a call whose arguments,
error message and headers hold credentials, writes it to the local store, and
prints what was stored: every secret is `REDACTED`, the rest kept as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path

import tracekit

DB = Path(tempfile.mkdtemp()) / "secrets.db"
os.environ["MY_SERVICE_API_KEY"] = "env-value-0123456789"  # a secret-looking variable


@tracekit.track
def call_service(query: str, headers: list[tuple[str, str]], options: dict[str, object]) -> str:
    raise PermissionError(
        f"401 from https://alice:hunter2pass@api.example.test: key env-value-0123456789 "
        f"rejected for {query!r}"
    )


def main() -> None:
    tracekit.configure(exporter="sqlite", db_path=DB, secrets=["my-db-password-1234"])
    # Your program sees the original exception, untouched.
    with contextlib.suppress(PermissionError):
        call_service(
            "weather in Oslo, db pass my-db-password-1234",
            [("Authorization", "Bearer abc123def456ghi789"), ("Accept", "text/plain")],
            {"apiKey": "sk-proj-abcdefghijklmnop1234", "max_tokens": 50, "tokens": [1, 2]},
        )
    tracekit.flush(5)
    with sqlite3.connect(DB) as conn:
        stored_input, stored_error = conn.execute("SELECT input, error_info FROM spans").fetchone()
    print("input:", json.dumps(json.loads(stored_input), indent=1))
    print("error:", json.loads(stored_error)["message"])


if __name__ == "__main__":
    main()
