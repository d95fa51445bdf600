"""Secrets: which values never leave the process.

By key name (`Redactor.is_secret`: `api_key`, `apiKey`, `x-api-key`,
`authorization`, ...) and by value (`Redactor.scrub`: known secret values and
common token formats inside any text). Both run on the export thread, never
on the traced call; the only hot-path cost is `register_secret`, called with
a LiteLLM call's credentials when the call starts.

The known values are: those given to `configure(secrets=[...])`, the values
of environment variables whose names look secret (re-read every few
seconds), and the credentials of the LiteLLM calls made in this process (the
last `MAX_REGISTERED` distinct ones).
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sized

__all__ = [
    "DEFAULT_REDACT",
    "MAX_REGISTERED",
    "REDACTED",
    "Redactor",
    "default_redactor",
    "register_secret",
]

REDACTED = "REDACTED"

# Key names whose values never leave the process: case-insensitive globs over
# the key's words joined by "_" (`apiKey`, `API-KEY`, `api key` are all
# `api_key`). `token` is matched whole or as a last word (`access_token`), so
# the usage fields `max_tokens` and `token_count` stay.
DEFAULT_REDACT: tuple[str, ...] = (
    "*api_key",
    "*apikey",
    "*authorization",
    "*password",
    "*passwd",
    "*secret",
    "token",
    "*_token",
    "*_key",
    "cookie",
    "cookies",
    "set_cookie",
    "*credentials",
)
# The same names written without any separator (`accesstoken`, `xapikey`):
# those cannot be split into words, so they are known whole.
_SQUASHED_NAMES = frozenset(
    (
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "xauthtoken",
        "sessiontoken",
        "bearertoken",
        "privatekey",
        "secretkey",
        "accesskey",
        "clientsecret",
        "setcookie",
        "xgoogapikey",
        "proxyauthorization",
        "awssecretaccesskey",
        "awssessiontoken",
        "apikeys",
        "credential",
        "secrets",
        "passphrase",
        "pwd",
        "dbpass",
        "auth",
    )
)
# Names that end like secrets but are not: tokenizer special tokens and
# ordinary kinds of key.
_NOT_SECRET_NAMES = frozenset(
    (
        "eos_token",
        "bos_token",
        "pad_token",
        "unk_token",
        "sep_token",
        "cls_token",
        "mask_token",
        "stop_token",
        "next_token",
        "start_token",
        "end_token",
        "cache_key",
        "sort_key",
        "primary_key",
        "foreign_key",
        "partition_key",
        "idempotency_key",
        "dedup_key",
        "group_key",
        "lookup_key",
        "object_key",
        "s3_key",
    )
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[-_\s.]+")


def _words(name: str) -> str:
    """`name` as lowercase words joined by "_": `x-goog-api-key`, `apiKey` -> `api_key`."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name)).strip("_").lower()


# -- values ------------------------------------------------------------------------------

# Shorter values would erase ordinary words wherever they appear.
MIN_ENV_VALUE = 8
MIN_VALUE = 6
# Distinct LiteLLM call credentials (and configured secrets) kept, newest last.
MAX_REGISTERED = 1_000
# How often the environment is re-read for secret-looking variables.
ENV_REFRESH_SECONDS = 2.0

_SECRET_ENV_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|(?:^|_)(?:API_?KEY|APIKEY|KEY|TOKEN|PAT|CREDENTIALS?|AUTH)$"
    r"|(?:^|_)(?:ACCESS|PRIVATE|SESSION)_KEY",
    re.IGNORECASE,
)
# Names that hold where a secret is, not the secret.
_NOT_SECRET_ENV_NAME = re.compile(
    r"_(?:FILE|PATH|DIR|SOCK|HOST|PORT|URL|ENDPOINT|REGION|ID|NAME|TYPE)$", re.IGNORECASE
)


class _Known:
    """The process-wide secret values: registered ones and the environment's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: dict[str, None] = {}  # insertion-ordered, bounded
        self._env: frozenset[str] = frozenset()
        self._env_read_at = -1e9
        self.env_size = -1
        self.version = 0
        self.snapshot: tuple[str, ...] = ()

    def register(self, value: str) -> None:
        if value in self._registered:  # the usual case: the same key on every call
            return
        with self._lock:
            if value in self._registered:
                return
            self._registered[value] = None
            while len(self._registered) > MAX_REGISTERED:
                del self._registered[next(iter(self._registered))]
            self._publish()

    def refresh_env(self, force: bool = False) -> None:
        """Re-read the environment if it is due (or has changed size)."""
        now = time.monotonic()
        size = len(_environ_data)
        if not force and now - self._env_read_at < ENV_REFRESH_SECONDS and size == self.env_size:
            return
        found = set()
        for name, value in list(os.environ.items()):
            if (
                len(value) >= MIN_ENV_VALUE
                and _SECRET_ENV_NAME.search(name)
                and not _NOT_SECRET_ENV_NAME.search(name)
            ):
                found.add(value)
        with self._lock:
            self._env_read_at, self.env_size = now, size
            if found != self._env:
                self._env = frozenset(found)
                self._publish()

    def _publish(self) -> None:  # under the lock
        self.snapshot = (*self._registered, *self._env)
        self.version += 1


_known = _Known()
# os.environ's own dict: its length is read on every scrub, so a variable
# added or removed is seen at once (a changed value within ENV_REFRESH_SECONDS).
_environ_data: Sized = getattr(os.environ, "_data", os.environ)


def register_secret(value: object) -> None:
    """Scrub `value` from every span exported from now on (and from tracekit's logs).

    For credentials met on the traced call (a LiteLLM call's `api_key`, ...):
    cheap when `value` is already known. Values shorter than 6 characters and
    non-strings are ignored.
    """
    if isinstance(value, str) and len(value) >= MIN_VALUE:
        _known.register(value)


# -- patterns ----------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9._~+/=\-]"
# Every pattern starts with a literal, so `re` finds its candidates with a
# fast substring search; the word boundary is a lookbehind after it.
_SK = re.compile(r"sk-(?<![A-Za-z0-9]sk-)[A-Za-z0-9_\-]{16,}")  # sk-, sk-proj-, sk-ant-
# A token after "Bearer"/"Basic" must look like one — a digit or "=" in it,
# or 20+ characters — so prose ("Basic principles", "the bearer instrument")
# is left alone.
_BEARER = re.compile(
    rf"earer(?<![A-Za-z0-9][Bb]earer)(?<=[Bb]earer)(\s+)"
    rf"(?=[A-Za-z._~+/\-]*[0-9=]|{_TOKEN}{{20}}){_TOKEN}{{8,}}"
)
_BASIC = re.compile(
    r"asic(?<![A-Za-z0-9][Bb]asic)(?<=[Bb]asic)(\s+)"
    r"(?=[A-Za-z+/]*[0-9=]|[A-Za-z0-9+/]{20})[A-Za-z0-9+/]{8,}={0,2}"
)
_USERINFO = re.compile(r"://[^/\s@?#\"'<>]+@")  # scheme://user:password@host
_QUERY_NAMES = (
    "apikey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "secret",
    "clientsecret",
    "password",
    "passwd",
    "sig",
    "signature",
)
# api_key=..., ?key=..., &token=...: a name (or the last word of one) before
# "="; the short names `key` and `token` only as URL query parameters or as
# the last word of a name (`api_key=`), so code such as `sorted(x, key=len)`
# or `dict(token=t)` in a traceback is kept.
_QUERY = re.compile(
    "=(?:"
    + "|".join(rf"(?<=(?i:{name})=)(?<![A-Za-z0-9](?i:{name})=)" for name in _QUERY_NAMES)
    + "|"
    + "|".join(rf"(?<=[?&_\-](?i:{name})=)" for name in ("key", "token"))
    + r")[^&\s#\"'<>,)]+"
)
# password='...' / api_key="..." inside a repr or a message.
_QUOTED = re.compile(
    r"""(?i:password|passwd|api_key|apikey|secret|access_token|client_secret)"""
    r"""(?<![A-Za-z0-9](?i:password))['"]?\s*[=:]\s*['"]([^'"\s]{4,})['"]"""
)
# Words one of which a `name='value'` secret must contain (a cheap prefilter).
_QUOTED_HINTS = ("assw", "ecret")
# Provider token formats: GitHub, Google, Slack (each starts with a literal).
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}")
_GOOGLE = re.compile(r"AIza[0-9A-Za-z_\-]{30,}")
_SLACK = re.compile(r"xox[abposr]-[0-9A-Za-z\-]{10,}")
_AWS_KEY_ID = re.compile(r"A(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Z])")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")


def _patterns_scrubbed(text: str) -> str:
    """`text` without token-shaped secrets.

    Each search costs about 1 ns a character, so a pattern is skipped when a
    character it needs is absent (`in` on one character is a memchr).
    """
    if "-" in text:
        text = _SK.sub("sk-" + REDACTED, text)
    text = _BEARER.sub(r"earer\1" + REDACTED, text)
    text = _BASIC.sub(r"asic\1" + REDACTED, text)
    if "@" in text:
        text = _USERINFO.sub("://" + REDACTED + "@", text)
    if "=" in text:
        text = _QUERY.sub("=" + REDACTED, text)
    if "A" in text and ("K" in text or "S" in text):
        text = _AWS_KEY_ID.sub(REDACTED, text)
    if "J" in text:
        text = _JWT.sub(REDACTED, text)
    if (
        ("=" in text or ":" in text)
        and ("'" in text or '"' in text)
        and any(hint in text for hint in _QUOTED_HINTS)
    ):
        text = _QUOTED.sub(_quoted_redacted, text)
    if "_" in text:
        text = _GITHUB.sub(REDACTED, text)
    if "AIza" in text:
        text = _GOOGLE.sub(REDACTED, text)
    if "xox" in text:
        text = _SLACK.sub(REDACTED, text)
    return text


def _quoted_redacted(match: re.Match[str]) -> str:
    start, end = match.span(1)
    whole = match.group(0)
    offset = match.start(0)
    return whole[: start - offset] + REDACTED + whole[end - offset :]


# No pattern can match a string shorter than this.
_MIN_PATTERN = 8

# Characters from most to least common in prose and data: a value is looked
# for only if its rarest characters are all in the text (each a memchr).
_COMMON = " etaoinsrhldcumfpgwybvkxjqz.,TSAIMCBHPWRDNELOFGUYVKJQXZ\n'\"-:0123456789"
_RARITY = {char: index for index, char in enumerate(_COMMON)}


def _rarest(value: str) -> tuple[str, ...]:
    distinct = sorted(set(value), key=lambda c: _RARITY.get(c, len(_COMMON)), reverse=True)
    return tuple(distinct[:3])


class _Values:
    """A fast "which known values does this text hold": grouped by their rarest character."""

    def __init__(self, values: Iterable[str]) -> None:
        values = tuple(set(values))
        groups: dict[str, list[tuple[str, str, str]]] = {}
        # Longest first, so a value containing another is replaced whole.
        for value in sorted(values, key=len, reverse=True):
            first, second, third = (*_rarest(value), value[0], value[0])[:3]
            groups.setdefault(first, []).append((value, second, third))
        self.groups = tuple((char, tuple(members)) for char, members in groups.items())
        self.shortest = min((len(v) for v in values), default=_MIN_PATTERN)

    def scrub(self, text: str) -> str:
        for char, members in self.groups:
            if char not in text:
                continue
            for value, second, third in members:
                if second in text and third in text and value in text:
                    text = text.replace(value, REDACTED)
        return text


class Redactor:
    """Decides which keys hold secrets, and removes known secrets from text.

    One per `configure()`; shared by the export thread's conversions.
    `scrub` is exact for the known values and the token formats above; it
    cannot see a secret that was split, encoded or truncated before it.
    """

    def __init__(
        self, patterns: Iterable[str] = DEFAULT_REDACT, values: Iterable[str] = ()
    ) -> None:
        self.patterns = tuple(patterns)
        self.values = tuple(v for v in values if isinstance(v, str) and len(v) >= MIN_VALUE)
        for value in self.values:  # also scrubbed from tracekit's own logs
            register_secret(value)
        joined = "|".join(fnmatch.translate(_words(p)) for p in self.patterns)
        self._regex = re.compile(joined) if joined else None
        self._cache: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._version = -1
        self._matcher = _Values(())
        self._min = _MIN_PATTERN
        self._scrubbed: dict[str, str] = {}  # recent short texts and their scrubbed form
        self._calls = 0
        _known.refresh_env(force=True)
        self._update()

    def is_secret(self, key: str) -> bool:
        """True if values under the key name `key` are secrets (any case or separators)."""
        known = self._cache.get(key)
        if known is None:
            words = _words(key)
            known = words not in _NOT_SECRET_NAMES and bool(
                (self._regex and self._regex.match(words))
                or words.replace("_", "") in _SQUASHED_NAMES
            )
            if len(self._cache) < 10_000:
                self._cache[key] = known
        return known

    def _update(self) -> None:
        """Take the process-wide known values if they changed."""
        with self._lock:
            version = _known.version
            if version == self._version:
                return
            matcher = _Values((*self.values, *_known.snapshot))
            self._matcher = matcher
            self._min = min(_MIN_PATTERN, matcher.shortest)
            self._scrubbed = {}
            self._version = version

    def scrub(self, text: str) -> str:
        """`text` with every known secret value and token-shaped secret replaced."""
        if len(text) < self._min:
            return text
        self._calls += 1
        if not self._calls & 255 or len(_environ_data) != _known.env_size:
            _known.refresh_env()
        if _known.version != self._version:
            self._update()
        short = len(text) <= 200
        if short:
            done = self._scrubbed.get(text)
            if done is not None:
                return done
        result = _patterns_scrubbed(self._matcher.scrub(text))
        if short:
            cache = self._scrubbed
            if len(cache) >= 4_096:
                cache.clear()
            cache[text] = result
        return result


_default: Redactor | None = None


def default_redactor() -> Redactor:
    """A Redactor with the default key names and the process-wide known values."""
    global _default
    if _default is None:
        _default = Redactor()
    return _default


def scrubber() -> Callable[[str], str]:
    """The default redactor's `scrub` (for log lines)."""
    return default_redactor().scrub
