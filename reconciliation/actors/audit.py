"""The audit actor: records every run and break in the audit store, off the run's path.

A slow or unavailable store delays only this actor; runs keep completing and
publishing, and what waits is recorded in order once the store answers again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reconciliation.actors._base import PipelineActor, tell
from reconciliation.messages import AuditHealthRequest, Record, RetryRecording

if TYPE_CHECKING:
    import pykka

    from reconciliation.audit.recorder import AuditRecorder
    from reconciliation.clock import Clock, TimerHandle
    from reconciliation.messages import Peers

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
        self._clock = clock
        self._retry: TimerHandle | None = None

    def on_start(self) -> None:
        self._record()

    def handle(self, message: Any) -> Any:
        if isinstance(message, Record):
            self._recorder.submit(message.result, message.ageing)
            if self._retry is None:
                self._record()
        elif isinstance(message, RetryRecording):
            self._retry = None
            self._record()
        elif isinstance(message, AuditHealthRequest):
            return self._recorder.health()
        else:
            logger.warning("The audit actor ignored an unexpected %s", type(message).__name__)
        return None

    def _record(self) -> None:
        delay = self._recorder.record()
        if delay is not None:
            me = self.actor_ref
            self._retry = self._clock.call_later(delay, lambda: tell(me, RetryRecording()))

    def on_stop(self) -> None:
        self._cancel_retry()
        if self._recorder.health().store_available:
            self._recorder.record()

    def on_failure(self, *exc_info: Any) -> None:
        self._cancel_retry()
        super().on_failure(*exc_info)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
