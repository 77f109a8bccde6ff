"""The publisher actor: logs every run, then hands it to Redis without making anyone wait.

Delivery itself (payloads, streams, outbox, exactly-once) lives in
`reconciliation._publishing.redis_publisher`; this actor decides when to try: at once when a run
arrives, and on a backoff timer while Redis is unreachable.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reconciliation._runtime.actor_base import PipelineActor, Retry
from reconciliation._runtime.messages import Publish, PublisherHealthRequest, RetryDelivery

if TYPE_CHECKING:
    import pykka

    from reconciliation._domain.models import ReconciliationResult
    from reconciliation._publishing.redis_publisher import RedisPublisher
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.messages import Peers

__all__ = ["PublisherActor", "log_result"]

logger = logging.getLogger("reconciliation._runtime.results")

STOP_FLUSH_ROUND_TRIPS = 20
"""At stop, how many round trips may drain a backlog before what is left is reported lost."""


def log_result(result: ReconciliationResult) -> None:
    """Every discrepancy at WARNING, a failed run at ERROR, a clean one at INFO."""
    trigger = result.trigger
    if result.error is not None:
        logger.error(
            "Reconciliation of %s failed (run %s, trigger %s): %s",
            result.account_id,
            result.run_id,
            trigger,
            result.error,
        )
        return
    for d in result.discrepancies:
        logger.warning(
            "%s %s on %s%s: local %s, broker %s (run %s, trigger %s)",
            d.severity.value.upper(),
            d.type.value,
            result.account_id,
            f" {d.subject}" if d.subject else "",
            "none" if d.local_value is None else format(d.local_value, "f"),
            "none" if d.broker_value is None else format(d.broker_value, "f"),
            result.run_id,
            trigger,
        )
    logger.info(
        "Reconciled %s: %s, %d positions checked in %.1f ms (run %s, trigger %s)",
        result.account_id,
        "clean" if result.is_clean else f"{len(result.discrepancies)} discrepancies",
        result.positions_checked,
        result.duration_ms,
        result.run_id,
        trigger,
    )


class PublisherActor(PipelineActor):
    role = "publisher"

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any],
        peers: Peers | None,
        *,
        publisher: RedisPublisher,
        clock: Clock,
    ) -> None:
        super().__init__(supervisor, peers)
        self._publisher = publisher
        self._retry = Retry(clock, self.actor_ref, RetryDelivery())

    def on_start(self) -> None:
        if self._publisher.health().outbox_depth:
            self._retry.attempt(self._publisher.deliver)

    def handle(self, message: Any) -> Any:
        if isinstance(message, Publish):
            self._publisher.submit(message.result, message.ageing)
            log_result(message.result)
            if not self._retry.pending:
                self._retry.attempt(self._publisher.deliver)
        elif isinstance(message, RetryDelivery):
            self._retry.attempt(self._publisher.deliver)
        elif isinstance(message, PublisherHealthRequest):
            return self._publisher.health()
        else:
            logger.warning("The publisher ignored an unexpected %s", type(message).__name__)
        return None

    def on_stop(self) -> None:
        self._retry.cancel()
        for _ in range(STOP_FLUSH_ROUND_TRIPS):
            if not self._publisher.health().redis_reachable or self._publisher.deliver() != 0.0:
                break
        undelivered = self._publisher.health()
        if undelivered.outbox_depth:
            logging.getLogger(__name__).error(
                "Stopping with %d runs (%d payloads) not delivered to Redis: %s",
                undelivered.outbox_depth,
                undelivered.outbox_payloads,
                undelivered.last_error,
            )

    def on_failure(self, *exc_info: Any) -> None:
        self._retry.cancel()
        super().on_failure(*exc_info)
