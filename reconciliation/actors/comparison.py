"""The comparator actor: turns a snapshot (or the reason there is none) into a result.

It runs inside the host engine's process and shares its GIL, so a large comparison
pauses every `CHUNK_SIZE` entries to release the GIL (`time.sleep(0)`): the engine's
threads then wait for well under a millisecond instead of the interpreter's 5 ms switch
interval. See docs/benchmarks.md ("engine jitter").
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from reconciliation.actors._base import PipelineActor, tell
from reconciliation.comparator import compare
from reconciliation.messages import RunFinished, SnapshotFailed, SnapshotTaken
from reconciliation.runs import completed_result, failed_result

if TYPE_CHECKING:
    import pykka

    from reconciliation.clock import Clock
    from reconciliation.messages import Peers
    from reconciliation.models import ReconciliationConfig

__all__ = ["ComparatorActor"]

logger = logging.getLogger(__name__)


def _let_other_threads_run() -> None:
    time.sleep(0)


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
            comparison = compare(message.snapshot, self._config, pause=_let_other_threads_run)
            result = completed_result(message.ticket, comparison, self._clock.monotonic())
        elif isinstance(message, SnapshotFailed):
            result = failed_result(message.ticket, message.reason, self._clock.monotonic())
        else:
            logger.warning("The comparator ignored an unexpected %s", type(message).__name__)
            return
        tell(self.peers.scheduler if self.peers else None, RunFinished(result))
