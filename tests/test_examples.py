"""Every script in examples/ runs and shows what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRACEKIT_DB": str(tmp_path / "traces.db")}
    for name in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY", "TRACEKIT_EXPORTER"):
        env.pop(name, None)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    return result


def _example(name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(EXAMPLES / name)], tmp_path)


def test_quickstart_exports_a_tree_that_tracekit_show_prints(tmp_path: Path) -> None:
    """make demo: the quickstart exports one trace to SQLite; `tracekit show last` prints it."""
    out = _example("quickstart.py", tmp_path).stdout
    assert "exported: True" in out
    shown = _run([str(Path(sys.executable).parent / "tracekit"), "show", "last"], tmp_path).stdout
    lines = shown.splitlines()
    assert "project=quickstart" in lines[1]
    assert "thread=conversation-1" in lines[1]
    names = [re.sub(r"^[█ ]*[│├└─ ]*", "", line).split(" [")[0] for line in lines[2:]]
    assert names == [
        "answer_question",
        "search",
        "chunk",
        "summarize",
        "summarize",
        "post-process",
        "stream_answer",
    ]
    assert "        └── stream_answer" in lines[-1]  # nested under post-process


def test_concurrency_example_nests_every_fan_out(tmp_path: Path) -> None:
    """Each fan-out is one trace, and all nine fetches sit inside one, none at the root."""
    lines = _example("concurrency.py", tmp_path).stdout.splitlines()
    assert sum(line.startswith("trace ") for line in lines) == 3
    assert sum("fetch [tool]" in line for line in lines) == 9
    assert not [line for line in lines if line.startswith("fetch")]


def test_generator_example_separates_body_and_consumer(tmp_path: Path) -> None:
    """The body's log lines nest under the generator, the consumer's under the consumer."""
    lines = _example("generators.py", tmp_path).stdout.splitlines()
    assert "total: 6" in lines
    (generator_line,) = [line for line in lines if "running_total" in line]
    assert generator_line.startswith("├── running_total")
    assert generator_line.endswith("(not completed)")
    under_generator = [line for line in lines if line.startswith(("│   ├── log", "│   └── log"))]
    under_consumer = [line for line in lines if line.startswith(("├── log", "└── log"))]
    assert (len(under_generator), len(under_consumer)) == (4, 3)


def test_exporters_example_prints_trees_and_redacts(tmp_path: Path) -> None:
    """The console exporter prints each trace on stderr; flush reports full delivery."""
    result = _example("exporters.py", tmp_path)
    assert "delivered: True" in result.stdout
    assert "'exported': 4" in result.stdout
    assert result.stderr.count("handle [general]") == 2
    assert result.stderr.count("└── lookup [tool]") == 2
    assert "sk-do-not-log" not in result.stderr


def _tree_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.search(r" \[(general|llm|tool)\] ", line)]


def test_litellm_app_example_nests_the_llm_call(tmp_path: Path) -> None:
    """The LLM call is the answering function's child, beside the tool call."""
    lines = _tree_lines(_example("litellm_app.py", tmp_path).stdout)
    assert lines[0].startswith("answer [general]")
    assert lines[1].startswith("├── search [tool]")
    assert lines[2].startswith("└── litellm.completion [llm]")
    assert "model=gpt-4o-mini tokens=30" in lines[2]


def test_litellm_streaming_example(tmp_path: Path) -> None:
    """Returned stream: the function span owns its LLM span; the abandoned stream is logged."""
    out = _example("litellm_streaming.py", tmp_path).stdout
    assert "once upon a time" in out
    assert "in a land far away" in out
    lines = _tree_lines(out)
    assert lines[0].startswith("story [general]")
    assert lines[1].startswith("└── litellm.completion [llm]")
    assert lines[2].startswith("async_story [general]")
    assert sum("litellm.completion [llm]" in line for line in lines[3:]) == 2
    llm_lines = [line for line in lines if "litellm.completion [llm]" in line]
    assert all(re.search(r"tokens=[1-9]", line) for line in llm_lines), llm_lines  # streams too


def test_litellm_async_generator_example(tmp_path: Path) -> None:
    """The generator and its LLM call end not completed; client sends stay with the endpoint."""
    lines = _tree_lines(_example("litellm_async_generator.py", tmp_path).stdout)
    assert lines[0].startswith("endpoint [general]")
    (generator,) = [line for line in lines if "chat_stream" in line]
    assert generator.endswith("(not completed)")
    assert any(line.startswith("│   └── litellm.completion [llm]") for line in lines)
    assert sum(line.startswith(("├── send_to_client", "└── send_to_client")) for line in lines) == 2


def test_litellm_fanout_example(tmp_path: Path) -> None:
    """Three summaries, each with its own LLM call nested under it."""
    lines = _tree_lines(_example("litellm_fanout.py", tmp_path).stdout)
    assert lines[0].startswith("summarize_all [general]")
    assert sum(line.startswith(("├── summarize", "└── summarize")) for line in lines) == 3
    assert (
        sum(line.endswith("tokens=30") and "└── litellm.completion" in line for line in lines) == 3
    )


def test_litellm_trio_example(tmp_path: Path) -> None:
    """Under trio, each to_thread LiteLLM call nests under its task's span."""
    lines = _tree_lines(_example("litellm_trio.py", tmp_path).stdout)
    assert lines[0].startswith("main_task [general]")
    assert sum(line.startswith(("├── ask", "└── ask")) for line in lines) == 2
    assert sum("└── litellm.completion [llm]" in line for line in lines) == 2


def test_readme_opens_with_the_two_commands() -> None:
    """README.md starts with exactly `make demo` and `make test`, and documents each area."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    block = readme.split("```")[1].strip().splitlines()
    assert [line.split("#")[0].strip() for line in block[1:]] == ["make demo", "make test"]
    for heading in (
        "## LiteLLM in one line",
        "## Where spans go",
        "## The `tracekit` command",
        "## Overhead",
    ):
        assert heading in readme


def test_delivery_example_accounts_for_every_span_and_dies_of_sigterm(tmp_path: Path) -> None:
    """The account balances, a stalled backend shows drops, SIGTERM flushes then kills."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "delivery.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TRACEKIT_DB": str(tmp_path / "t.db")},
    )
    assert result.returncode == -15, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("delivered: True")
    assert "exported=100" in lines[1]
    assert lines[2].endswith("delivered: False")
    stalled = dict(part.split("=") for part in lines[3].split())
    assert stalled["exported"] == "0"
    assert int(stalled["dropped"]) >= 200 - 50 - 50 - 10  # queue, buffer, one batch sent
    assert all(line.endswith("balanced=True") for line in (lines[1], lines[3]))
    import sqlite3

    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 101


def test_secrets_example_stores_no_secret(tmp_path: Path) -> None:
    """Every credential in the example's arguments and error is REDACTED; the rest is kept."""
    out = _example("redaction.py", tmp_path).stdout
    for secret in (
        "my-db-password-1234",
        "env-value-0123456789",
        "hunter2pass",
        "abc123def456ghi789",
        "abcdefghijklmnop1234",
    ):
        assert secret not in out
    assert "REDACTED" in out
    assert '"max_tokens": 50' in out
    assert "weather in Oslo" in out


def test_feedback_example_shows_a_line_per_score(tmp_path: Path) -> None:
    """Scores given while running and one given later all show under their span or trace."""
    lines = _example("feedback.py", tmp_path).stdout.splitlines()
    assert "exported: True" in lines
    title = next(i for i, line in enumerate(lines) if line.startswith("trace "))
    assert "project=feedback-example" in lines[title + 1]
    assert lines[title + 2] == "score grounded = 1 (auto)"
    assert lines[title + 3] == "score user_rating = 0: wanted Saturday hours"
    retrieve = next(i for i, line in enumerate(lines) if "retrieve [tool]" in line)
    assert lines[retrieve + 1].strip() == "score retrieval_hits = 2: 2 docs found"


def test_across_services_example_prints_one_tree(tmp_path: Path) -> None:
    """The service's span nests under the caller's: one trace, two levels."""
    lines = _example("across_services.py", tmp_path).stdout.splitlines()
    assert "exported: True" in lines
    trees = [i for i, line in enumerate(lines) if line.startswith("trace ")]
    assert len(trees) == 1
    assert "answer" in lines[trees[0]]
    assert "    └── look_up_order [tool]" in lines[trees[0] + 3]


def test_openai_example_records_one_llm_span_per_call_with_tokens_and_cost(
    tmp_path: Path,
) -> None:
    """Offline, through the real openai SDK: both calls nest as LLM spans, priced (no LiteLLM
    import: the price list shipped in the litellm package)."""
    out = _example("openai_direct.py", tmp_path).stdout
    assert out.splitlines().count("Paris, on the Seine.") == 2
    assert "exported: True" in out
    llm_lines = [line for line in out.splitlines() if "openai.chat.completions [llm]" in line]
    assert len(llm_lines) == 2
    assert all("17 tokens" in line for line in llm_lines)
    listed = _run([str(Path(sys.executable).parent / "tracekit"), "ls"], tmp_path).stdout
    assert "0.000010" in listed  # 2 x (12 x $0.15/M + 5 x $0.60/M)
