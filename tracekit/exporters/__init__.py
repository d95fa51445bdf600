"""Exporters: where finished spans go, one module per backend, behind one batcher.

Choose one with `tracekit.configure(exporter=...)`: "auto", "opik", "sqlite",
"console" or "none" — or pass any object with `export(batch)`,
`flush(timeout) -> bool` and `shutdown()` (see `Exporter`).
"""

from tracekit.exporters._base import Exporter

__all__ = ["Exporter"]
