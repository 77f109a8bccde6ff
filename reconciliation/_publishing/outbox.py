"""The bounded queue of runs waiting for Redis: whole runs, oldest first.

A run's payloads enter and leave together, so a consumer never sees half a run. When
the outbox is full the oldest run is dropped to make room for the newest (the newest
state of the book is what an operator needs most); every drop is counted and logged at
ERROR. Not thread-safe: the publisher's actor owns it.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["Outbox", "PendingRun"]

logger = logging.getLogger(__name__)


def _payloads(value: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(value)


@attrs.frozen
class PendingRun:
    """One run's encoded payloads, (channel, JSON) in publish order."""

    run_id: str
    payloads: tuple[tuple[str, str], ...] = attrs.field(converter=_payloads)


class Outbox:
    def __init__(self, max_runs: int) -> None:
        if max_runs < 1:
            msg = f"max_runs must be at least 1, got {max_runs}"
            raise ValueError(msg)
        self._max_runs = max_runs
        self._runs: collections.deque[PendingRun] = collections.deque()
        self._payloads = 0
        self._dropped_runs = 0
        self._dropped_payloads = 0

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[PendingRun]:
        return iter(self._runs)

    @property
    def dropped_runs(self) -> int:
        """How many runs were dropped, undelivered, since the outbox was made."""
        return self._dropped_runs

    @property
    def dropped_payloads(self) -> int:
        return self._dropped_payloads

    @property
    def payload_count(self) -> int:
        """How many payloads the queued runs hold together."""
        return self._payloads

    def append(self, run: PendingRun) -> PendingRun | None:
        """Queue `run` last; returns the oldest run if it had to be dropped for room."""
        dropped = self._drop_oldest() if len(self._runs) >= self._max_runs else None
        self._runs.append(run)
        self._payloads += len(run.payloads)
        return dropped

    def head(self, max_payloads: int) -> list[PendingRun]:
        """The oldest runs, at least one, together holding at most `max_payloads` payloads."""
        batch: list[PendingRun] = []
        total = 0
        for run in self._runs:
            total += len(run.payloads)
            if batch and total > max_payloads:
                break
            batch.append(run)
        return batch

    def remove_head(self, count: int) -> list[PendingRun]:
        """Take the `count` oldest runs off the queue (they were delivered)."""
        removed = [self._runs.popleft() for _ in range(min(count, len(self._runs)))]
        self._payloads -= sum(len(run.payloads) for run in removed)
        return removed

    def _drop_oldest(self) -> PendingRun:
        dropped = self._runs.popleft()
        self._payloads -= len(dropped.payloads)
        self._dropped_runs += 1
        self._dropped_payloads += len(dropped.payloads)
        logger.error(
            "Outbox full (%d runs): dropped undelivered run %s and its %d payloads; "
            "%d runs (%d payloads) lost so far while Redis was unreachable",
            self._max_runs,
            dropped.run_id,
            len(dropped.payloads),
            self._dropped_runs,
            self._dropped_payloads,
        )
        return dropped
