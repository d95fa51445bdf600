"""Optional integrations and what to install for each (`pip install 'tracekit[NAME]'`).

The base install (`wrapt`, `rich`) traces, stores to SQLite and runs the
`tracekit` command. Opik export, the LiteLLM and the openai integrations
each need their extra; using one without it raises one clear ImportError
naming the extra, before anything is changed.
"""

from __future__ import annotations

import importlib.util

__all__ = ["installed", "require"]


def installed(module: str) -> bool:
    """Can `module` be imported (without importing it)?"""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(feature: str, extra: str, *modules: str) -> None:
    """Raise ImportError naming `extra` when one of `modules`, which `feature` needs, is missing."""
    missing = [module for module in modules if not installed(module)]
    if missing:
        raise ImportError(
            f"tracekit: {feature} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; "
            f"install it with: pip install 'tracekit[{extra}]'",
            name=missing[0],
        )
