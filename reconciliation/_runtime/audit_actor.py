"""The audit actor: records every run and break in the audit store, off the run's path.

A slow or unavailable store delays only this actor; runs keep completing and
publishing, and what waits is recorded in order once the store answers again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reconciliation._runtime.actor_base import PipelineActor, Retry
from reconciliation._runtime.messages import AuditHealthRequest, Record, RetryRecording

if TYPE_CHECKING:
    import pykka

    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.messages import Peers
    from reconciliation.audit._recorder import AuditRecorder

__all__ = ["AuditActor"]

logger = logging.getLogger(__name__)


class AuditActor(PipelineActor):
    role = "audit"

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any],
        peers: Peers | None,
        *,
        recorder: AuditRecorder,
        clock: Clock,
    ) -> None:
        super().__init__(supervisor, peers)
        self._recorder = recorder
        self._retry = Retry(clock, self.actor_ref, RetryRecording())

    def on_start(self) -> None:
        self._retry.attempt(self._recorder.record)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Record):
            self._recorder.submit(message.result, message.ageing)
            if not self._retry.pending:
                self._retry.attempt(self._recorder.record)
        elif isinstance(message, RetryRecording):
            self._retry.attempt(self._recorder.record)
        elif isinstance(message, AuditHealthRequest):
            return self._recorder.health()
        else:
            logger.warning("The audit actor ignored an unexpected %s", type(message).__name__)
        return None

    def on_stop(self) -> None:
        self._retry.cancel()
        if self._recorder.health().store_available:
            self._recorder.record()
        self._recorder.close()

    def on_failure(self, *exc_info: Any) -> None:
        self._retry.cancel()
        super().on_failure(*exc_info)
