"""`import tracekit` loads what the hot path needs; the rest loads on first use."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

# Each is left out of `import tracekit`, and why it is not needed there:
NOT_ON_IMPORT = (
    # ~40 ms: wrapt 2 imports asyncio and importlib.metadata. Plain functions are
    # wrapped without it; methods, coroutines, generators and integrations load it.
    "wrapt",
    "asyncio",
    "importlib.metadata",
    # The SQLite exporter and the store: loaded when the first span is exported.
    "sqlite3",
    "tracekit._store",
    "tracekit.exporters._sqlite",
    # ~3 ms (it loads `platform`): ids given to log_feedback / continue_trace only.
    "uuid",
    # For tests only: `tracekit.testing` is imported on first use.
    "tracekit.testing",
    "tracekit._tree",
    # The command line only.
    "tracekit.cli",
    "rich",
    # Integrations, seconds to import: loaded by instrument_*() / the Opik exporter.
    "opik",
    "litellm",
    "openai",
    "httpx",
)


def _run(code: str, tmp_path: Path, **env: str) -> str:
    """Run `code` in a fresh interpreter whose traces (if any) go to a file in `tmp_path`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRACEKIT_")}
    environment.update(TRACEKIT_DB=str(tmp_path / "traces.db"), **env)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _loaded_by(code: str, tmp_path: Path, **env: str) -> set[str]:
    """The modules `code` adds to those a bare interpreter has loaded."""
    probe = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    return set(json.loads(_run(probe, tmp_path, **env).splitlines()[-1]))


@pytest.mark.parametrize("exporter", ["sqlite", "auto", "none"])
def test_import_tracekit_loads_only_what_tracing_needs(tmp_path: Path, exporter: str) -> None:
    """`import tracekit` loads no wrapt, asyncio, sqlite3, store, testing, CLI nor SDK."""
    loaded = _loaded_by("import tracekit", tmp_path, TRACEKIT_EXPORTER=exporter)
    assert "tracekit" in loaded
    assert sorted(loaded.intersection(NOT_ON_IMPORT)) == []


def test_tracing_a_plain_function_does_not_import_wrapt(tmp_path: Path) -> None:
    """A plain function is decorated and traced without wrapt; a method still binds."""
    code = (
        "import sys, tracekit\n"
        "@tracekit.track\n"
        "def f(x):\n"
        "    return x + 1\n"
        "assert f(1) == 2\n"
        "print('wrapt' in sys.modules)\n"
        "class A:\n"
        "    @tracekit.track\n"
        "    def m(self, x):\n"
        "        return (self, x)\n"
        "a = A()\n"
        "assert a.m(2) == (a, 2)\n"
        "print('wrapt' in sys.modules)\n"
    )
    assert _run(code, tmp_path, TRACEKIT_EXPORTER="none").split() == ["False", "True"]


def test_testing_is_imported_on_first_use(tmp_path: Path) -> None:
    """`tracekit.testing` works as an attribute, by import, and in `dir()` and `__all__`."""
    code = (
        "import sys, tracekit\n"
        "assert 'testing' in dir(tracekit) and 'testing' in tracekit.__all__\n"
        "assert 'tracekit.testing' not in sys.modules\n"
        "with tracekit.testing.capture() as captured:\n"
        "    @tracekit.track\n"
        "    def step():\n"
        "        return 1\n"
        "    step()\n"
        "import tracekit.testing\n"
        "from tracekit import testing\n"
        "from tracekit.testing import capture\n"
        "assert testing is tracekit.testing and capture is testing.capture\n"
        "print([s.name for s in captured.spans])\n"
    )
    assert _run(code, tmp_path, TRACEKIT_EXPORTER="none").strip() == "['step']"


def test_unknown_attribute_is_an_attribute_error(tmp_path: Path) -> None:
    """`tracekit.nothing` raises AttributeError naming it, as for any module."""
    import tracekit

    with pytest.raises(AttributeError, match="nothing"):
        tracekit.nothing  # type: ignore[attr-defined]  # noqa: B018


def test_the_default_sqlite_export_works_without_an_early_import(tmp_path: Path) -> None:
    """With the store loaded only at the first export, a traced program's spans still land."""
    code = (
        "import sys, tracekit\n"
        "assert 'sqlite3' not in sys.modules\n"
        "@tracekit.track\n"
        "def job():\n"
        "    return 'done'\n"
        "job()\n"
        "assert tracekit.flush(10)\n"
    )
    _run(code, tmp_path, TRACEKIT_EXPORTER="sqlite")
    with closing(sqlite3.connect(tmp_path / "traces.db")) as conn:
        assert conn.execute("SELECT name FROM traces").fetchall() == [("job",)]
