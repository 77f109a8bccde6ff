"""The snapshot fetcher: reads both sides of an account without ever blocking the pipeline.

The reads run on the fetcher's own event loop (async implementations) or in daemon
threads (plain ones); the actor only starts them and forwards what comes back, so a
broker that hangs delays nothing but its own run, and that only until the timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.error_text import describe_error
from reconciliation._domain.models import Snapshot
from reconciliation._runtime.actor_base import PipelineActor, tell
from reconciliation._runtime.messages import (
    FetchSnapshot,
    RunAborted,
    RunTicket,
    SnapshotFailed,
    SnapshotTaken,
)
from reconciliation._runtime.snapshot import SnapshotError, fetch_snapshot
from reconciliation._runtime.workers import DaemonWorkers

if TYPE_CHECKING:
    import pykka

    from reconciliation._domain.models import ReconciliationConfig
    from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.messages import Peers

__all__ = ["SnapshotFetcher"]

logger = logging.getLogger(__name__)


@attrs.frozen
class _Fetched:
    ticket: RunTicket
    future: concurrent.futures.Future[Snapshot] = attrs.field(eq=False)


class SnapshotFetcher(PipelineActor):
    role = "fetcher"

    def __init__(
        self,
        supervisor: pykka.ActorRef[Any],
        peers: Peers | None,
        *,
        portfolio: PortfolioManager,
        broker: BrokerQuery,
        config: ReconciliationConfig,
        clock: Clock,
    ) -> None:
        super().__init__(supervisor, peers)
        self._portfolio = portfolio
        self._broker = broker
        self._config = config
        self._clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="reconciliation-fetch", daemon=True
        )
        self._pending: set[concurrent.futures.Future[Snapshot]] = set()
        self._workers = DaemonWorkers("reconciliation-call")

    def on_start(self) -> None:
        self._thread.start()

    def handle(self, message: Any) -> Any:
        if isinstance(message, FetchSnapshot):
            self._fetch(message.ticket)
        elif isinstance(message, _Fetched):
            self._forward(message)
        else:
            logger.warning("The fetcher ignored an unexpected %s", type(message).__name__)

    def _fetch(self, ticket: RunTicket) -> None:
        future = asyncio.run_coroutine_threadsafe(
            fetch_snapshot(
                self._portfolio,
                self._broker,
                ticket.account_id,
                limit=self._config.broker_timeout_seconds,
                now=self._clock.now,
                workers=self._workers,
            ),
            self._loop,
        )
        self._pending.add(future)
        me = self.actor_ref
        future.add_done_callback(lambda done: tell(me, _Fetched(ticket, done)))

    def _forward(self, fetched: _Fetched) -> None:
        self._pending.discard(fetched.future)
        if fetched.future.cancelled():
            return
        error = fetched.future.exception()
        if error is None:
            message: SnapshotTaken | SnapshotFailed = SnapshotTaken(fetched.ticket, fetched.future.result())
        elif isinstance(error, SnapshotError):
            message = SnapshotFailed(fetched.ticket, str(error))
        else:
            message = SnapshotFailed(fetched.ticket, f"reading the snapshot failed: {describe_error(error)}")
        if not tell(self.peers.comparator if self.peers else None, message):
            reason = "the comparator is not running (see the service's health)"
            tell(self.peers.scheduler if self.peers else None, RunAborted(fetched.ticket.run_id, reason))

    def on_stop(self) -> None:
        self._close_loop()

    def on_failure(self, *exc_info: Any) -> None:
        self._close_loop()
        super().on_failure(*exc_info)

    def _close_loop(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._workers.close()
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            return
        abandoned = asyncio.all_tasks(self._loop)
        for task in abandoned:
            task.cancel()
        if abandoned:
            self._loop.run_until_complete(asyncio.gather(*abandoned, return_exceptions=True))
        self._loop.close()
