"""The environment: TRACEKIT_EXPORTER, TRACEKIT_DB, TRACEKIT_DISABLED and the "auto" choice.

Each case runs a fresh interpreter, since tracekit reads the environment on import.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = """
import tracekit
from tracekit import _config

@tracekit.track
def job(x):
    return x + 1

assert job(1) == 2
print("exporter:", _config.exporter_name())
print("wrapped:", hasattr(job, "__wrapped__"))
print("flushed:", tracekit.flush(10))
"""


def _run(tmp_path: Path, program: str = PROGRAM, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )


def test_auto_without_opik_writes_the_local_store(tmp_path: Path) -> None:
    """With no Opik settings, spans go to .tracekit/traces.db under the working directory."""
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exporter: sqlite" in result.stdout
    assert (tmp_path / ".tracekit" / "traces.db").is_file()


def test_tracekit_db_moves_the_local_store(tmp_path: Path) -> None:
    """TRACEKIT_DB names the SQLite file."""
    result = _run(tmp_path, TRACEKIT_DB=str(tmp_path / "elsewhere.db"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / ".tracekit").exists()


def test_auto_picks_opik_when_it_is_configured(tmp_path: Path) -> None:
    """OPIK_URL_OVERRIDE, OPIK_API_KEY or ~/.opik.config make "auto" choose Opik."""
    which = "from tracekit import _config; print(_config.exporter_name())"
    assert _run(tmp_path, which).stdout.strip() == "sqlite"
    assert _run(tmp_path, which, OPIK_URL_OVERRIDE="http://127.0.0.1:9/api/").stdout == "opik\n"
    assert _run(tmp_path, which, OPIK_API_KEY="key").stdout == "opik\n"
    (tmp_path / ".opik.config").write_text("[opik]\nurl_override = http://127.0.0.1:9/api/\n")
    assert _run(tmp_path, which).stdout.strip() == "opik"


def test_tracekit_exporter_overrides_the_auto_choice(tmp_path: Path) -> None:
    """TRACEKIT_EXPORTER=console prints the trace tree on stderr instead of writing a file."""
    result = _run(tmp_path, TRACEKIT_EXPORTER="console", OPIK_API_KEY="key")
    assert result.returncode == 0, result.stderr
    assert "exporter: console" in result.stdout
    assert "job [general]" in result.stderr
    assert not (tmp_path / ".tracekit").exists()


def test_an_unknown_tracekit_exporter_warns_and_falls_back(tmp_path: Path) -> None:
    """TRACEKIT_EXPORTER=bogus never stops the program: one stderr line, then the auto choice."""
    result = _run(tmp_path, TRACEKIT_EXPORTER="bogus")
    assert result.returncode == 0, result.stderr
    assert "exporter: sqlite" in result.stdout
    assert "flushed: True" in result.stdout
    lines = result.stderr.splitlines()
    assert lines == [
        "tracekit: TRACEKIT_EXPORTER='bogus' is not an exporter (accepted: 'auto', 'opik', "
        "'sqlite', 'console', 'none'); using the automatic choice, 'sqlite'"
    ]


@pytest.mark.parametrize("value", ["maybe", "2", "disabled"])
def test_an_unknown_tracekit_disabled_value_warns_and_traces(tmp_path: Path, value: str) -> None:
    """TRACEKIT_DISABLED with a value that is neither true nor false says so; tracing stays on."""
    result = _run(tmp_path, TRACEKIT_DISABLED=value)
    assert result.returncode == 0, result.stderr
    assert "wrapped: True" in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"tracekit: TRACEKIT_DISABLED={value!r} is not understood (accepted: ")
    assert line.endswith("; tracing stays on")


@pytest.mark.parametrize("value", ["true", "YES", " on ", "y"])
def test_tracekit_disabled_accepts_the_usual_spellings(tmp_path: Path, value: str) -> None:
    """TRACEKIT_DISABLED takes 1/true/yes/on/y in any case as true, silently."""
    result = _run(tmp_path, TRACEKIT_DISABLED=value)
    assert result.returncode == 0, result.stderr
    assert "wrapped: False" in result.stdout
    assert result.stderr == ""


def test_disabled_records_nothing_and_leaves_functions_undecorated(tmp_path: Path) -> None:
    """TRACEKIT_DISABLED=1: @track returns the function itself and nothing is written."""
    result = _run(tmp_path, TRACEKIT_DISABLED="1")
    assert result.returncode == 0, result.stderr
    assert "wrapped: False" in result.stdout
    assert not (tmp_path / ".tracekit").exists()


def test_an_environment_problem_is_said_once_per_process(tmp_path: Path) -> None:
    """configure() called again does not repeat the TRACEKIT_EXPORTER warning."""
    program = PROGRAM + "\ntracekit.configure()\ntracekit.configure(project_name='p')\n"
    result = _run(tmp_path, program, TRACEKIT_EXPORTER="bogus")
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1
