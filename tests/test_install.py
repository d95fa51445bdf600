"""`pip install tracekit` alone: tracing, the SQLite store and the CLI work; extras are named.

Installs the package, without extras, into a throwaway venv (from the package
registry: wrapt, rich, setuptools to build), then runs a traced script and
`tracekit show last` there.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TRACED = """
import tracekit

@tracekit.track
def answer(question):
    return question.upper()

answer("base install")
print("flushed:", tracekit.flush(10))
"""

MISSING_EXTRAS = """
import tracekit

for use, extra in (
    (tracekit.instrument_litellm, "litellm"),
    (tracekit.instrument_openai, "openai"),
    (lambda: tracekit.configure(exporter="opik"), "opik"),
):
    try:
        use()
    except ImportError as exc:
        assert f"pip install 'tracekit[{extra}]'" in str(exc), exc
        print("refused:", extra)
"""


def _run(command: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("base-install")
    venv.create(folder / "venv", with_pip=True)
    python = folder / "venv" / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        folder,
        timeout=600,
    )
    return folder / "venv" / "bin"


@pytest.mark.timeout(900)
def test_the_base_install_traces_stores_and_shows(base_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(TRACED)
    assert "flushed: True" in _run([str(base_venv / "python"), "app.py"], tmp_path).stdout
    shown = _run([str(base_venv / "tracekit"), "show", "last"], tmp_path).stdout
    assert "answer [general]" in shown
    listed = _run([str(base_venv / "python"), "-m", "pip", "list"], tmp_path).stdout.lower()
    for heavy in ("litellm", "opik", "openai"):
        assert f"\n{heavy} " not in listed


@pytest.mark.timeout(900)
def test_a_feature_whose_extra_is_missing_names_the_extra(base_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "uses.py").write_text(MISSING_EXTRAS)
    out = _run([str(base_venv / "python"), "uses.py"], tmp_path).stdout
    assert out.splitlines() == ["refused: litellm", "refused: openai", "refused: opik"]
