"""The comparator actor: turns a snapshot (or the reason there is none) into a result."""

from __future__ import annotations

import logging
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
            comparison = compare(message.snapshot, self._config)
            result = completed_result(message.ticket, comparison, self._clock.monotonic())
        elif isinstance(message, SnapshotFailed):
            result = failed_result(message.ticket, message.reason, self._clock.monotonic())
        else:
            logger.warning("The comparator ignored an unexpected %s", type(message).__name__)
            return
        tell(self.peers.scheduler if self.peers else None, RunFinished(result))
