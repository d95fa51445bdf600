"""No secret reaches the SQLite file: by key name and by value, in every field of a span."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tracekit
from tracekit._redact import REDACTED, Redactor, register_secret

# Key names whose values are secrets, however they are written.
SECRET_KEYS = [
    "api_key",
    "api-key",
    "apiKey",
    "API_KEY",
    "x-api-key",
    "X-Api-Key",
    "apikey",
    "x-goog-api-key",
    "authorization",
    "proxy-authorization",
    "x-auth-token",
    "refresh-token",
    "accessToken",
    "refreshToken",
    "access_token",
    "privateKey",
    "clientSecret",
    "client_secret",
    "password",
    "db_password",
    "passwd",
    "cookie",
    "cookies",
    "set-cookie",
    "token",
    "openai_key",
    "aws_secret_access_key",
    "credentials",
]
# Usage fields and ordinary names that must stay.
PLAIN_KEYS = [
    "max_tokens",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "token_count",
    "tokens",
    "maxTokens",
    "messages",
    "monkey",
    "keys",
]

# Secrets in free text, by shape: (text holding the secret, the secret's bytes).
VALUE_PATTERNS = [
    (
        "openai key",
        "Incorrect API key provided: sk-proj-Zq81xRt5LmNwB2vQ0pH7",
        "Zq81xRt5LmNwB2vQ0pH7",
    ),
    ("anthropic key", "key sk-ant-api03-Yw7_Kp2Lq9Rz5Xc1Vb3N-Tm", "Yw7_Kp2Lq9Rz5Xc1Vb3N-Tm"),
    ("bearer", "Authorization: Bearer gho_Ab12Cd34Ef56Gh78Ij90", "gho_Ab12Cd34Ef56Gh78Ij90"),
    ("basic", "authorization: Basic dXNlcjpodW50ZXIyMjI=", "dXNlcjpodW50ZXIyMjI"),
    ("url userinfo", "GET https://alice:Pa55w0rdXyz@db.example.com/x", "Pa55w0rdXyz"),
    ("query api_key", "https://h.example/v1?api_key=Q9w8E7r6T5y4&x=1", "Q9w8E7r6T5y4"),
    ("query key", "https://h.example/v1?alt=json&key=AIzaQ9w8E7r6T5y4U3", "AIzaQ9w8E7r6T5y4U3"),
    ("query token", "https://h.example/v1?a=1&token=Tk8s7d6f5g4h3j2", "Tk8s7d6f5g4h3j2"),
    ("query access_token", "cb?access_token=At9u8y7t6r5e4w&x", "At9u8y7t6r5e4w"),
    ("aws key id", "aws id AKIAIOSFODNN7EXAMPLE rejected", "AKIAIOSFODNN7EXAMPLE"),
    (
        "jwt",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    ),
]

ENV_SECRET = "env-secret-Hq3Lw9Zt7Ys1"
REGISTERED_SECRET = "registered-Vx4Nb8Mk2Jp6"
CALL_SECRET = "call-credential-Rt5Gy7Uj9Ik"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """SQLite export to a temporary file; a secret env var set before configure()."""
    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    tracekit.configure(
        exporter="sqlite",
        db_path=tmp_path / "t.db",
        flush_interval=0.01,
        secrets=[REGISTERED_SECRET],
    )
    yield tmp_path
    tracekit.configure(exporter="none")


def stored_bytes(directory: Path) -> bytes:
    """Every byte of the database, its -wal and -shm files."""
    assert tracekit.flush(10)
    return b"".join(path.read_bytes() for path in sorted(directory.glob("t.db*")))


def through_every_field(value: Any, text: str) -> None:
    """A trace whose input, output, metadata, error message and trace fields hold the values."""

    @tracekit.track
    def failing(argument: Any) -> None:
        tracekit.update_current_span(metadata={"extra": value, "note": text})
        raise ValueError(f"failed: {text}")

    @tracekit.track
    def agent(argument: Any, note: str) -> Any:
        tracekit.update_current_trace(
            input={"trace_in": value, "t": text},
            output={"trace_out": value, "t": text},
            metadata={"trace_meta": value, "t": text},
        )
        with contextlib.suppress(ValueError):
            failing(argument)
        return {"returned": value, "text": text}

    agent({"arg": value, "text": text}, text)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_values_under_secret_key_names_are_not_stored(store: Path, key: str) -> None:
    """A value under any spelling of a secret key name is REDACTED in every field."""
    secret = f"value-of-{key}-Wq7Ez3Rx"
    through_every_field({key: secret}, "no secret here")
    stored = stored_bytes(store)
    assert b"no secret here" in stored
    assert secret.encode() not in stored


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_usage_fields_and_plain_names_are_kept(key: str) -> None:
    """max_tokens, total_tokens, token_count and other plain names are not secret names."""
    assert not Redactor().is_secret(key)


@pytest.mark.parametrize(("text", "secret"), [case[1:] for case in VALUE_PATTERNS])
def test_token_shaped_secrets_in_text_are_not_stored(store: Path, text: str, secret: str) -> None:
    """sk- keys, Bearer/Basic, URL userinfo, key/token query values, AWS ids, JWTs go."""
    through_every_field({"plain": text}, text)
    stored = stored_bytes(store)
    assert secret.encode() not in stored
    assert REDACTED.encode() in stored


@pytest.mark.parametrize(
    "secret",
    [ENV_SECRET, REGISTERED_SECRET, CALL_SECRET],
    ids=["env var", "configure(secrets=)", "registered credential"],
)
def test_known_secret_values_are_not_stored_anywhere(store: Path, secret: str) -> None:
    """Secret-named env vars, configured secrets and call credentials go from every field."""
    register_secret(CALL_SECRET)
    text = f"the server said: bad credential {secret}!"
    through_every_field({"plain": text, secret: "as a key"}, text)
    stored = stored_bytes(store)
    assert b"the server said" in stored
    assert secret.encode() not in stored


def test_an_env_var_set_after_configure_is_scrubbed_within_seconds(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is re-read: a secret env var set later is scrubbed too."""
    late = "late-env-secret-Pp0Oo9Ii8"
    monkeypatch.setenv("LATE_SERVICE_TOKEN", late)
    through_every_field({"plain": late}, late)
    stored = stored_bytes(store)
    assert late.encode() not in stored


def test_short_or_unrelated_env_values_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Env values under 8 characters, and non-secret names, are not scrubbed."""
    monkeypatch.setenv("SHORT_API_KEY", "abc1234")
    monkeypatch.setenv("CREDENTIALS_FILE", "/etc/app/credentials-file.json")
    monkeypatch.setenv("HOME_GREETING", "hello-there-friend")
    redactor = Redactor()
    text = "abc1234 /etc/app/credentials-file.json hello-there-friend"
    assert redactor.scrub(text) == text


def test_tracekit_log_lines_do_not_quote_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """A known secret in a tracekit log message or its exception text is REDACTED."""
    from tracekit._log import logger

    register_secret(CALL_SECRET)
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        try:
            raise RuntimeError(f"provider said {CALL_SECRET}")
        except RuntimeError:
            logger.exception("tracekit: export failed for %s", CALL_SECRET)
    assert "provider said" in caplog.text
    assert CALL_SECRET not in caplog.text
    assert CALL_SECRET not in "".join(
        logging.Formatter().format(record) for record in caplog.records
    )


def test_secrets_in_names_tags_and_threads_are_not_stored(store: Path) -> None:
    """A known secret in a span name, a tag, a thread id or a model name is scrubbed too."""
    with (
        tracekit.context(thread_id=f"thread-{REGISTERED_SECRET}", tags=[f"t-{REGISTERED_SECRET}"]),
        tracekit.span(f"call {REGISTERED_SECRET}") as span,
    ):
        span.update(model=f"model-{REGISTERED_SECRET}")
        tracekit.update_current_trace(name=f"trace {REGISTERED_SECRET}")
    assert REGISTERED_SECRET.encode() not in stored_bytes(store)


def test_secrets_inside_bytes_and_bytes_headers_are_not_stored(store: Path) -> None:
    """Bytes holding a known secret are stored scrubbed, never base64-encoded; ASGI headers too."""

    @tracekit.track
    def handle(body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        return None

    handle(
        f"token={REGISTERED_SECRET}".encode(),
        [(b"authorization", b"plain-header-value-1234"), (b"x-api-key", b"asgiplainkey0001")],
    )
    stored = stored_bytes(store)
    for secret in (REGISTERED_SECRET, "plain-header-value-1234", "asgiplainkey0001"):
        assert secret.encode() not in stored
    import base64

    assert base64.b64encode(f"token={REGISTERED_SECRET}".encode())[:20] not in stored


@pytest.mark.parametrize(
    "text",
    [
        "Basic principles of secure design",
        "the bearer instrument",
        "sorted([3, 1], key=lambda x: x)",
        "dict(token=abc)",
    ],
)
def test_ordinary_text_is_not_redacted(text: str) -> None:
    """Prose and code that merely mention Basic, bearer, key= or token= stay as they are."""
    assert Redactor().scrub(text) == text


@pytest.mark.parametrize(
    "name", ["eos_token", "pad_token", "bos_token", "cache_key", "sort_key", "primary_key"]
)
def test_tokenizer_and_ordinary_key_names_are_kept(name: str) -> None:
    """Tokenizer special tokens and ordinary kinds of key are not secrets."""
    assert not Redactor().is_secret(name)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Config(password='hunter2pass', user='bob')", "hunter2pass"),
        ("ghp_" + "a1" * 18, "a1" * 18),
        ("key AIza" + "b" * 35, "b" * 35),
        ("xoxb-1234567890-abcdef", "1234567890-abcdef"),
    ],
)
def test_more_secret_shapes_are_scrubbed(text: str, secret: str) -> None:
    """password='...' in a repr, and GitHub, Google and Slack tokens, are scrubbed."""
    assert secret not in Redactor().scrub(text)


def test_a_cost_that_is_not_a_finite_number_is_refused() -> None:
    """update(total_cost=...) names a value no backend can store."""
    with tracekit.span("s") as span:
        for bad in (10**400, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=r"total_cost=.*expected a finite number"):
                span.update(total_cost=bad)
        with pytest.raises(TypeError, match=r"total_cost=.1\.5."):
            span.update(total_cost="1.5")  # type: ignore[arg-type]


def test_a_secret_near_the_cut_is_not_left_in_part(store: Path) -> None:
    """Secrets replaced before the cut never pull half of a later one into what is kept."""
    limit = 10_000
    head = REGISTERED_SECRET * (limit // len(REGISTERED_SECRET) + 400)  # shrinks when scrubbed
    tracekit.configure(
        exporter="sqlite",
        db_path=store / "t.db",
        flush_interval=0.01,
        secrets=[REGISTERED_SECRET],
        max_string_length=limit,
    )

    @tracekit.track
    def takes(text: str) -> None:
        return None

    takes(head + "x" * 100)
    assert REGISTERED_SECRET[:8].encode() not in stored_bytes(store)
