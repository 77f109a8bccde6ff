"""Getting finished runs to a sink that may be down: the queue each `DeliveryActor` keeps (a
plain object owned by that actor, not thread-safe), and the way to a sink as health shows it.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_BUSY_LIMIT_SECONDS",
    "BoundedQueue",
    "DeliveryHealth",
]

T = TypeVar("T")

DEFAULT_BUSY_LIMIT_SECONDS = 5.0
"""How long one call to a sink may take before health reports it unreachable (stalled),
unless the sink's actor is given its own limit (the Redis socket timeout, the audit store's)."""

@attrs.frozen
class DeliveryHealth:
    """The way to one sink, as an operator needs to see it.

    .. versionadded:: 0.1
    """

    sink: str
    queued_runs: int
    """Runs waiting to be delivered."""
    queued_items: int
    delivered_runs: int
    dropped_runs: int
    """Runs lost because the queue was full while the sink was unavailable."""
    set_aside_runs: int
    """Runs the sink refused for their content (each logged at ERROR with its run id)."""
    last_error: str | None
    last_error_at: dt.datetime | None
    last_delivery_at: dt.datetime | None
    reachable: bool
    """False from a failed attempt until one that worked, and while one call has been
    busy longer than `busy_limit_seconds` (then `last_error` says since when)."""
    busy_since: dt.datetime | None = None
    """When the call in progress began; None between calls."""
    busy_limit_seconds: float = DEFAULT_BUSY_LIMIT_SECONDS
    """The longest one call to the sink should take (its own timeout); busy longer, it is unreachable."""
    incoming_runs: int = 0
    """Runs handed to the sink's actor that it has not taken yet, because it is busy on a call
    (its inbox, counted as it stands: a retry tick in it counts too)."""

    def judged_at(self, now: dt.datetime) -> DeliveryHealth:
        """This health as it stands at `now`: unreachable if one call has been busy past its limit."""
        if self.busy_since is None:
            return self
        busy = (now - self.busy_since).total_seconds()
        if busy <= self.busy_limit_seconds:
            return self
        return attrs.evolve(
            self,
            reachable=False,
            last_error=(
                f"busy since {self.busy_since:%Y-%m-%d %H:%M:%S} UTC on one call ({busy:.0f} s, "
                f"past its {self.busy_limit_seconds:g} s limit): stalled"
            ),
            last_error_at=now,
        )


@attrs.frozen
class Queued(Generic[T]):
    """A run prepared for its sink, as the queue keeps it."""

    run_id: str
    account_id: str
    item: T
    weight: int
    size: int = 0
    """Its bytes, as the queue's byte bound counts them (0: not counted)."""
    seq: int | None = None
    """Its entry in the outbox journal; None when it is not journaled."""


class BoundedQueue(Generic[T]):
    """Items waiting for a sink, oldest first; when full (in runs, or in bytes), the oldest
    are dropped (and counted).

    The newest state of the book is what an operator needs most, so a full queue keeps
    the newest runs — always at least the newest one, whatever its size.
    """

    def __init__(self, max_runs: int, max_bytes: int | None = None) -> None:
        if max_runs < 1:
            msg = f"max_runs must be at least 1, got {max_runs}"
            raise ValueError(msg)
        if max_bytes is not None and max_bytes < 1:
            msg = f"max_bytes must be at least 1, got {max_bytes}"
            raise ValueError(msg)
        self.max_runs = max_runs
        self._max_bytes = max_bytes
        self._entries: collections.deque[Queued[T]] = collections.deque()
        self.weight = 0
        """The items' total weight (payloads, rows)."""
        self.size = 0
        """The items' total bytes."""
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Queued[T]]:
        return iter(self._entries)

    def append(self, entry: Queued[T]) -> list[Queued[T]]:
        """Queue `entry` last; returns the oldest entries dropped to make room, oldest first."""
        self._entries.append(entry)
        self.weight += entry.weight
        self.size += entry.size
        dropped: list[Queued[T]] = []
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_runs or (self._max_bytes is not None and self.size > self._max_bytes)
        ):
            dropped.extend(self.pop(1))
            self.dropped += 1
        return dropped

    def head(self, max_weight: int) -> list[Queued[T]]:
        """The oldest entries, at least one, together weighing at most `max_weight`."""
        batch: list[Queued[T]] = []
        total = 0
        for entry in self._entries:
            total += entry.weight
            if batch and total > max_weight:
                break
            batch.append(entry)
        return batch

    def pop(self, count: int) -> list[Queued[T]]:
        """Take the `count` oldest entries off the queue."""
        taken = [self._entries.popleft() for _ in range(min(count, len(self._entries)))]
        self.weight -= sum(entry.weight for entry in taken)
        self.size -= sum(entry.size for entry in taken)
        return taken
