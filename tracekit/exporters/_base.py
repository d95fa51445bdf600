"""The exporter interface, and the exporter that drops everything."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tracekit._records import Batch

__all__ = ["Exporter", "NoneExporter"]


@runtime_checkable
class Exporter(Protocol):
    """A backend. Called from tracekit's export thread only, one batch at a time."""

    def export(self, batch: Batch) -> None:
        """Deliver `batch`, or raise: the batch is then retried, and counted as failed."""

    def flush(self, timeout: float) -> bool:
        """Deliver anything buffered inside the exporter; True when it all went out."""

    def shutdown(self) -> None:
        """Release connections and files; no export follows."""


class NoneExporter:
    """Records nothing: spans still reach `tracekit.testing.capture()`."""

    def export(self, batch: Batch) -> None:
        pass

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        pass
