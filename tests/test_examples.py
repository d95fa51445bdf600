"""Every script in examples/ runs and prints the tree it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_prints_the_nested_tree() -> None:
    """The demo nests sync, async, generator and async generator spans under one root."""
    out = _run("quickstart.py")
    assert out.count("trace ") == 1
    assert "answer_question [general]" in out
    for child in ("├── search [tool]", "├── chunk", "├── summarize", "└── post-process"):
        assert child in out
    assert "    └── stream_answer" in out


def test_concurrency_example_nests_every_fan_out() -> None:
    """Each fan-out is one trace, and all nine fetches sit inside one, none at the root."""
    out = _run("concurrency.py")
    lines = out.splitlines()
    assert out.count("trace ") == 3
    assert sum("fetch [tool]" in line for line in lines) == 9
    assert not [line for line in lines if line.startswith("fetch")]


def test_generator_example_separates_body_and_consumer() -> None:
    """The body's log lines nest under the generator, the consumer's under the consumer."""
    lines = _run("generators.py").splitlines()
    assert "total: 6" in lines
    (generator_line,) = [line for line in lines if "running_total" in line]
    assert generator_line.startswith("├── running_total")
    assert generator_line.endswith("(not completed)")
    under_generator = [line for line in lines if line.startswith(("│   ├── log", "│   └── log"))]
    under_consumer = [line for line in lines if line.startswith(("├── log", "└── log"))]
    assert (len(under_generator), len(under_consumer)) == (4, 3)
