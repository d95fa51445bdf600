"""The public API is exactly what `tracekit/__init__.py` exports."""

from types import ModuleType

import tracekit


def test_all_lists_exactly_the_public_names() -> None:
    """`tracekit.__all__` is sorted and equals the module's public names."""
    public = {
        name
        for name, value in vars(tracekit).items()
        if not name.startswith("_")
        and name.isidentifier()
        and (not isinstance(value, ModuleType) or name == "testing")
    }
    assert sorted(tracekit.__all__) == tracekit.__all__
    assert set(tracekit.__all__) == public


def test_implementation_modules_are_private() -> None:
    """Every module inside the package but `testing` (and subpackages) starts with `_`."""
    import pkgutil

    names = [m.name for m in pkgutil.iter_modules(tracekit.__path__)]
    public = [n for n in names if not n.startswith("_") and not n[0].isupper()]
    assert set(public) <= {"testing", "cli", "exporters", "integrations"}


def test_import_tracekit_loads_neither_litellm_nor_opik() -> None:
    """`import tracekit` stays fast: litellm and opik load only when asked for."""
    import subprocess
    import sys

    probe = "import sys, tracekit; print('litellm' in sys.modules, 'opik' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "False"]
