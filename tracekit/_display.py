"""Text from the trace store made inert for a terminal.

The store holds whatever a traced program produced, an attacker's strings
included. Before any of it reaches a human view, control characters (C0, C1,
DEL), bidirectional overrides and line separators are made visible as
escapes (`\\x1b`), so nothing written by a traced program can move the
cursor, set the clipboard (OSC 52), open links (OSC 8) or retitle a window.
Callers wrap the result in `rich.text.Text`, which never reads markup.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["error_text", "inert", "json_safe", "score_text"]

# C0, DEL, C1, the bidi controls (reordering text), line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same minus what json.dumps already escapes (C0): left raw by ensure_ascii=False.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\n":
        return "⏎"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(value: Any, limit: int = 200) -> str:
    """`value` as one line of plain, visible text, cut after `limit` characters.

    Strings are shown as they are (minus the escapes above); None is empty;
    anything else (a blob, a number, JSON of an unexpected shape) as compact JSON
    or its repr.
    """
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    elif isinstance(value, bytes | bytearray):
        text = repr(bytes(value))
    else:
        text = json.dumps(value, ensure_ascii=False, default=repr, separators=(",", ":"))
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_visible, text)


def error_text(error_info: Any, limit: int = 500) -> str:
    """A span's error as `Type: message`, whatever shape the store gave it."""
    if isinstance(error_info, dict):
        kind = inert(error_info.get("exception_type", "error"), 100)
        return f"{kind}: {inert(error_info.get('message', ''), limit)}"
    return inert(error_info, limit)


def score_text(score: Any, limit: int = 200) -> str:
    """A feedback score as `score name = value (category): reason`, whatever the store held."""
    value = getattr(score, "value", None)
    number = f"{value:g}" if isinstance(value, float | int) else inert(value, 40)
    text = f"score {inert(getattr(score, 'name', ''), 80)} = {number}"
    if category := getattr(score, "category_name", None):
        text += f" ({inert(category, 80)})"
    if reason := getattr(score, "reason", None):
        text += f": {inert(reason, limit)}"
    return text


def json_safe(document: str) -> str:
    """JSON text with C1, DEL and bidi controls escaped as `\\uXXXX`: same values, inert bytes."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
