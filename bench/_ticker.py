"""A 1 ms ticker thread: how late the engine's own periodic work wakes while we run."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TICK_SECONDS", "Ticker"]

TICK_SECONDS = 0.001


class Ticker:
    """A thread that sleeps 1 ms at a time and records how late each wake-up is (ms)."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._running = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="bench-ticker", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.is_set():
            before = time.perf_counter()
            time.sleep(TICK_SECONDS)
            if self._running.is_set():
                self.late.append((time.perf_counter() - before - TICK_SECONDS) * 1000)

    def measure(self, work: Callable[[], object]) -> list[float]:
        """The lateness of every wake-up while `work` runs."""
        self.late = []
        self._running.set()
        try:
            work()
        finally:
            self._running.clear()
        return self.late

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
