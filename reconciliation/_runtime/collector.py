"""The collector policy: full collections kept rare and small while a runtime runs.

A full (generation 2) collection scans every object the collector tracks, with the GIL
held: with 2,000 accounts of 200 positions that is about 2.4 million objects and took
0.8-3.5 s on a loaded 2-core machine, during which no run moves. Two settings keep
them off the run path, both process-wide, both undone when the last runtime stops:

- the objects alive at start (the host's books, built before it) are moved to the
  permanent generation (`gc.freeze()`): no collection scans them again;
- a full collection waits for `FULL_COLLECTION_THRESHOLD` collections of generation 1
  instead of 10, so that the runs' young garbage (collected in generations 0 and 1) does
  not keep calling one.

A host that manages the collector itself is left alone: with the collector disabled
nothing is changed; with thresholds of its own, or objects it froze, those stay as they
are. See docs/operations.md, "The garbage collector".
"""

from __future__ import annotations

import gc
import logging
import threading

import attrs

__all__ = ["DEFAULT_THRESHOLDS", "FULL_COLLECTION_THRESHOLD", "POLICY", "CollectorPolicy"]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = (700, 10, 10)
"""CPython's own thresholds: a host that left them is taken not to manage the collector."""

FULL_COLLECTION_THRESHOLD = 1000
"""Generation-1 collections before a full one is considered, while a runtime runs."""


@attrs.define
class _Changed:
    """What the policy changed, to undo when the last runtime stops."""

    thresholds: tuple[int, int, int] | None = None
    """The thresholds before (None: left as they were)."""
    froze: bool = False


class CollectorPolicy:
    """Held by each running runtime (`hold` at start, `release` at stop); the settings
    apply while at least one holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._changed = _Changed()

    @property
    def holders(self) -> int:
        with self._lock:
            return self._holders

    def hold(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders > 1 or not gc.isenabled():
                return
            thresholds = gc.get_threshold()
            if thresholds == DEFAULT_THRESHOLDS:
                gc.set_threshold(thresholds[0], thresholds[1], FULL_COLLECTION_THRESHOLD)
                self._changed.thresholds = thresholds
            if gc.get_freeze_count() == 0:
                gc.freeze()
                self._changed.froze = True
            logger.debug(
                "Collector policy: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold()
            )

    def release(self) -> None:
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders > 0:
                return
            changed, self._changed = self._changed, _Changed()
            if changed.froze:
                gc.unfreeze()
            if changed.thresholds is not None and gc.get_threshold()[2] == FULL_COLLECTION_THRESHOLD:
                gc.set_threshold(*changed.thresholds)


POLICY = CollectorPolicy()
"""The process's policy: the collector is one per process, like this."""
