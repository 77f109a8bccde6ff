"""In-process observers of every finished run: how `reconciliation.testing` captures
what is published without Redis, a thread or a sleep (like `structlog.testing.capture_logs`).

Observers are process-wide and called synchronously in the emit step, before anyone
waiting for the run is answered: when `await service.reconcile()` returns, its run has
been observed. They must be quick; one that raises is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciliation._runtime.messages import FinishedRun

__all__ = ["add_observer", "notify_observers", "remove_observer"]

logger = logging.getLogger(__name__)


_lock = threading.Lock()
_observers: tuple[Callable[[FinishedRun], object], ...] = ()


def add_observer(observer: Callable[[FinishedRun], object]) -> None:
    global _observers  # noqa: PLW0603 - a process-wide hook, by design (see the module docstring)
    with _lock:
        _observers = (*_observers, observer)


def remove_observer(observer: Callable[[FinishedRun], object]) -> None:
    global _observers  # noqa: PLW0603
    with _lock:
        _observers = tuple(o for o in _observers if o is not observer)


def notify_observers(run: FinishedRun) -> None:
    for observer in _observers:
        try:
            observer(run)
        except Exception:
            logger.exception("An observer of finished runs failed on run %s", run.result.run_id)
