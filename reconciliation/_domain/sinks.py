"""What leaves a run, and the contract of every place it goes (a *sink*: the log, Redis, the
audit store), with no I/O: the runtime delivers to sinks, and the sinks implement it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

import attrs

from reconciliation._domain.ageing import AgeingUpdate
from reconciliation._domain.correction import CorrectionEvent
from reconciliation._domain.models import ReconciliationResult, Snapshot

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Delivery", "FinishedRun", "ItemCodec", "Sent", "Sink", "SinkUnavailableError"]

Item = TypeVar("Item")


@attrs.frozen
class FinishedRun:
    """A run as it leaves the pipeline for every sink: its result (severities after
    escalation) and how old its breaks are (empty for a failed run).

    `snapshot` is the books it compared, for the corrector: set only for an account
    with a `CorrectionPolicy`, and never for a failed run.

    .. versionadded:: 0.1
    """

    result: ReconciliationResult
    ageing: AgeingUpdate
    snapshot: Snapshot | None = attrs.field(default=None, eq=False, repr=False)


Delivery = FinishedRun | CorrectionEvent
"""What a sink delivers: a finished run, or a step of a correction (see `corrector_actor`)."""


class SinkUnavailableError(Exception):
    """The sink cannot take anything now (unreachable, locked, timed out): try again later."""


@attrs.frozen
class Sent:
    """What one attempt achieved: the first `delivered` items are in.

    When `refused` is set, the item after them was refused for its content (retrying
    cannot help): it is set aside so that the items behind it still get through.
    """

    delivered: int
    refused: str | None = None


class Sink(Protocol[Item]):
    """A destination of finished runs and correction events. Called only from its delivery actor's thread."""

    @property
    def name(self) -> str:
        """Short, for logs and health: `redis`, `audit`."""
        ...

    def prepare(self, run: Delivery) -> Item:
        """What to keep queued for `run` — a `FinishedRun` or a `CorrectionEvent` — (encoded
        once, sent perhaps many times)."""
        ...

    def weight(self, item: Item) -> int:
        """How much of a round trip the item takes (payloads, rows); at least 1."""
        ...

    def send(self, items: Sequence[Item]) -> Sent:
        """Deliver `items`, oldest first, as far as possible in one attempt.

        Raises:
            SinkUnavailableError: nothing more can be delivered now.
        """
        ...

    def close(self) -> None:
        """Release connections; also called from another thread to unblock a stalled `send`."""
        ...


class ItemCodec(Protocol[Item]):
    """How a sink's queued items are written to the outbox journal and read back after a restart."""

    def encode(self, item: Item) -> bytes:
        """The item as bytes that `decode` gives back whole (its de-duplication identity included)."""
        ...

    def decode(self, data: bytes) -> Item:
        """An item `encode` wrote.

        Raises:
            ValueError: `data` is not one (a damaged journal entry).
        """
        ...
