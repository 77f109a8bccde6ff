"""`ReconciliationService`: the facade a trading engine starts, tells fills and asks for runs.

Behind it, the pipeline of actors: the debouncer (`service.ref`, the entry) →
scheduler → fetcher → comparator → scheduler → publisher (and audit), kept running by
the supervisor. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import TYPE_CHECKING, Any

import pykka

from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.models import OrderFill, ReconciliationConfig, ReconciliationResult
from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
from reconciliation._domain.triggers import OnDemand, Startup
from reconciliation._publishing.redis_clients import redacted
from reconciliation._publishing.redis_publisher import PublisherHealth, RedisPublisher
from reconciliation._runtime.clock import SystemClock
from reconciliation._runtime.messages import (
    AuditHealthRequest,
    HealthRequest,
    Peers,
    PeersRequest,
    PublisherHealthRequest,
    ReconcileRequest,
    RunRequested,
)
from reconciliation._runtime.supervisor import ServiceHealth, Supervisor
from reconciliation._runtime.workers import call_in_daemon_thread
from reconciliation.audit._errors import AuditStoreError
from reconciliation.audit._recorder import AuditHealth, AuditRecorder
from reconciliation.audit._store import open_store

if TYPE_CHECKING:
    import redis

    from reconciliation._domain.triggers import Trigger
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.scheduler_actor import HaltCallback

__all__ = ["ReconciliationService"]

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 30.0


class ReconciliationService:
    """Reconciles `config.account_id` at startup, periodically, after fills and on demand.

    Args:
        portfolio: the engine's book (plain or async methods).
        broker_query: the broker's view (plain or async methods).
        redis: a redis-py client; every run and discrepancy is published through it.
        config: intervals, tolerances, severities; see docs/configuration.md.
        clock: time and timers; a `ManualClock` in tests. By default the service runs
            its own timer thread, stopped by `stop()`.
        on_halt: the kill switch, called as `on_halt(break_state, result)` once for each
            CRITICAL break confirmed by `config.ageing.halt_after_runs` consecutive runs
            (off unless that is set). It runs on the scheduler's thread: keep it quick,
            e.g. tell the engine's risk actor.
    """

    def __init__(
        self,
        portfolio: PortfolioManager,
        broker_query: BrokerQuery,
        redis: redis.Redis,
        config: ReconciliationConfig,
        *,
        clock: Clock | None = None,
        on_halt: HaltCallback | None = None,
    ) -> None:
        if not isinstance(portfolio, PortfolioManager):
            msg = f"portfolio must implement PortfolioManager (get_positions, get_account), not {portfolio!r}"
            raise TypeError(msg)
        if not isinstance(broker_query, BrokerQuery):
            msg = (
                f"broker_query must implement BrokerQuery (get_positions, get_account), not {broker_query!r}"
            )
            raise TypeError(msg)
        if not isinstance(config, ReconciliationConfig):
            msg = f"config must be a ReconciliationConfig, not {type(config).__name__}"
            raise TypeError(msg)
        self._portfolio = portfolio
        self._broker = broker_query
        self._config = config
        self._given_clock = clock
        self._clock: Clock | None = None
        self._supervisor: pykka.ActorRef[Any] | None = None
        self._entry: pykka.ActorRef[Any] | None = None
        self._on_halt = on_halt
        self._tracker = BreakTracker(config.ageing)
        self._publisher = RedisPublisher(
            redis,
            stream_maxlen=config.stream_maxlen,
            outbox_max_runs=config.outbox_max_runs,
            retry_max_seconds=config.publish_retry_max_seconds,
            clock=clock or SystemClock(),
        )

    @property
    def config(self) -> ReconciliationConfig:
        return self._config

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        """The entry actor: tell it `OrderFill`s, ask it `ReconcileRequest`s."""
        if self._entry is None:
            msg = f"the reconciliation service for {self._config.account_id} is not started"
            raise RuntimeError(msg)
        return self._entry

    @property
    def is_running(self) -> bool:
        return self._entry is not None and self._entry.is_alive()

    async def start(self) -> ReconciliationResult | None:
        """Start the actors and run the startup reconciliation.

        Returns:
            The startup run's result, or None when `config.enabled` is False.

        Raises:
            RuntimeError: if the service is already started.
        """
        if self._supervisor is not None:
            msg = f"the reconciliation service for {self._config.account_id} is already started; call stop() first"
            raise RuntimeError(msg)
        clock = self._given_clock or SystemClock()
        self._clock = clock
        recorder = None
        if self._config.audit_store is not None:
            target = self._config.audit_store
            recorder = await call_in_daemon_thread(lambda: self._open_audit(target, clock))
        self._supervisor = Supervisor.start(
            portfolio=self._portfolio,
            broker=self._broker,
            publisher=self._publisher,
            config=self._config,
            clock=clock,
            tracker=self._tracker,
            recorder=recorder,
            on_halt=self._on_halt,
        )
        peers: Peers = self._supervisor.ask(PeersRequest(), block=True, timeout=STOP_TIMEOUT_SECONDS)
        self._entry = peers.debouncer
        logger.info("Reconciliation service started for %s", self._config.account_id)
        if not self._config.enabled:
            return None
        return await self._run(self._config.account_id, Startup())

    async def reconcile(
        self, account_id: str | None = None, *, requested_by: str = "api"
    ) -> ReconciliationResult:
        """Run now and return the result of a run whose snapshot was taken after this call.

        Raises:
            TypeError, ValueError: an account id or requester that is not a non-empty str.
        """
        request = ReconcileRequest(
            self._config.account_id if account_id is None else account_id, requested_by
        )
        return await self._run(request.account_id, OnDemand(request.requested_by))

    async def on_fill(self, fill: OrderFill) -> None:
        """A fill was booked: reconcile once the burst it belongs to has settled."""
        if not isinstance(fill, OrderFill):
            msg = f"on_fill takes an OrderFill, not {type(fill).__name__}"
            raise TypeError(msg)
        self.ref.tell(fill)

    async def stop(self) -> None:
        """Stop every actor, timer and thread the service started. Idempotent.

        A run in flight is reported failed ("the service stopped"); nothing is
        published after this returns.
        """
        supervisor, self._supervisor, self._entry = self._supervisor, None, None
        if supervisor is None:
            return
        try:
            await call_in_daemon_thread(lambda: supervisor.stop(block=True, timeout=STOP_TIMEOUT_SECONDS))
        except pykka.Timeout:
            logger.error(  # noqa: TRY400 - the reason is the whole message
                "The reconciliation service for %s did not stop within %g s; its actors are left to end",
                self._config.account_id,
                STOP_TIMEOUT_SECONDS,
            )
        if self._given_clock is None and isinstance(self._clock, SystemClock):
            self._clock.close()
        self._clock = None
        logger.info("Reconciliation service stopped for %s", self._config.account_id)

    def health(self, timeout: float = 5.0) -> ServiceHealth:
        """Which actors are down, and how often each was restarted."""
        health: ServiceHealth = self.ref.ask(HealthRequest(), block=True, timeout=timeout)
        return health

    def publisher_health(self, timeout: float = 5.0) -> PublisherHealth:
        """Outbox depth, delivered and dropped counts, the last Redis error."""
        health: PublisherHealth = self.ref.ask(PublisherHealthRequest(), block=True, timeout=timeout)
        return health

    def audit_health(self, timeout: float = 5.0) -> AuditHealth | None:
        """Backlog, recorded, dropped and failed runs of the audit store; None without one."""
        health: AuditHealth | None = self.ref.ask(AuditHealthRequest(), block=True, timeout=timeout)
        return health

    def _open_audit(self, target: str, clock: Clock) -> AuditRecorder:
        """Open the audit store and seed break ageing from its open breaks.

        A store that cannot be read now does not stop the service: ageing starts
        afresh (logged), and the audit actor keeps trying to record.
        """
        store = open_store(target)
        try:
            store.migrate()
            self._tracker = BreakTracker(self._config.ageing, store.load_open_breaks(self._config.account_id))
        except AuditStoreError as exc:
            logger.error(  # noqa: TRY400 - the reason is enough; the service goes on
                "The audit store %s could not be read (%s): break ageing starts afresh", redacted(target), exc
            )
        return AuditRecorder(
            store,
            max_backlog=self._config.audit_backlog_max_runs,
            retry_max_seconds=self._config.publish_retry_max_seconds,
            clock=clock,
        )

    async def _run(self, account_id: str, trigger: Trigger) -> ReconciliationResult:
        reply: concurrent.futures.Future[ReconciliationResult] = concurrent.futures.Future()
        self.ref.tell(RunRequested(account_id, trigger, reply))
        return await asyncio.wrap_future(reply)
