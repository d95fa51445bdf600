"""Exporters that the tests plug in through `configure(exporter=...)`: real objects
implementing the Exporter interface, which hold, fail or record on demand."""

from __future__ import annotations

import threading

from tracekit._records import Batch


class RecordingExporter:
    """Keeps every batch; can be made to block (`hold`) or to fail (`failing`)."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.failing = False
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self.shut_down = False

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def export(self, batch: Batch) -> None:
        self.entered.set()
        self._gate.wait(30)
        if self.failing:
            raise ConnectionError("backend down")
        self.batches.append(batch)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self) -> None:
        self.shut_down = True

    @property
    def span_names(self) -> list[str]:
        return [s.name for b in self.batches for s in b.spans]


# The source of an exporter that never answers, for programs run in a subprocess.
STALLED_EXPORTER = """
import threading

class Stalled:
    def export(self, batch):
        threading.Event().wait()
    def flush(self, timeout):
        return True
    def shutdown(self):
        pass
"""
