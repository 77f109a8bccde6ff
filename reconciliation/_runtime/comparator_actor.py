"""The comparator actor: turns a snapshot (or the reason there is none) into a result.

It runs inside the host engine's process and shares its GIL. A pure-Python loop gives
the GIL to other threads only every switch interval (5 ms), so a large comparison would
delay each of the engine's threads by up to that much, again and again. The comparison
therefore pauses between chunks, and once `GIL_BUDGET_SECONDS` of work has passed since
its last pause, it releases the GIL with `time.sleep(0)`, which hands it to a waiting
thread (`os.sched_yield()` did not reliably: p99 jitter 8.4 ms against 1.5 ms, at the same
cost to the comparison); the comparison pays a few percent. Books under `LARGE_BOOK`
are compared in one go. See docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from reconciliation._domain.compare import compare
from reconciliation._runtime.actor_base import PipelineActor, tell
from reconciliation._runtime.messages import RunFinished, SnapshotFailed, SnapshotTaken
from reconciliation._runtime.results import completed_result, failed_result

if TYPE_CHECKING:
    import pykka

    from reconciliation._domain.models import ReconciliationConfig
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.messages import Peers

__all__ = ["GIL_BUDGET_SECONDS", "LARGE_BOOK", "ComparatorActor", "GilBudget"]

logger = logging.getLogger(__name__)


GIL_BUDGET_SECONDS = 0.0005
"""The longest the comparison holds the GIL before it lets other threads run."""

LARGE_BOOK = 20_000
"""Positions (both sides) past which the comparison pauses; a smaller one takes less
than the interpreter's own switch interval, so chunking it would only slow it down."""


class GilBudget:
    """A comparison's `pause`: releases the GIL once the budget since the last release is spent."""

    def __init__(self, seconds: float = GIL_BUDGET_SECONDS) -> None:
        self._seconds = seconds
        self._since = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self._since >= self._seconds:
            time.sleep(0)
            self._since = time.perf_counter()


class ComparatorActor(PipelineActor):
    role = "comparator"

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any],
        peers: Peers | None,
        *,
        config: ReconciliationConfig,
        clock: Clock,
    ) -> None:
        super().__init__(supervisor, peers)
        self._config = config
        self._clock = clock

    def handle(self, message: Any) -> Any:
        if isinstance(message, SnapshotTaken):
            snapshot = message.snapshot
            large = len(snapshot.local_positions) + len(snapshot.broker_positions) > LARGE_BOOK
            comparison = compare(snapshot, self._config, pause=GilBudget() if large else None)
            result = completed_result(
                message.ticket, comparison, message.snapshot.taken_at, self._clock.monotonic()
            )
        elif isinstance(message, SnapshotFailed):
            result = failed_result(message.ticket, message.reason, self._clock.monotonic())
        else:
            logger.warning("The comparator ignored an unexpected %s", type(message).__name__)
            return
        tell(self.peers.scheduler if self.peers else None, RunFinished(result))
