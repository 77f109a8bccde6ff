"""The supervisor: starts the pipeline's actors and keeps them running.

When an actor dies it logs it, restarts it (a bounded number of times), tells every
peer where the new one is, and has the run the dead actor was holding reported failed.
It also takes what the entry actor (the debouncer, `service.ref`) hands on: on-demand
requests, which it passes to the scheduler (the asker gets the run's result), and
health questions.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from reconciliation._domain.triggers import OnDemand
from reconciliation._runtime.actor_base import FollowingFuture, tell
from reconciliation._runtime.audit_actor import AuditActor
from reconciliation._runtime.comparator_actor import ComparatorActor
from reconciliation._runtime.debouncer_actor import FillDebouncer
from reconciliation._runtime.fetcher_actor import SnapshotFetcher
from reconciliation._runtime.messages import (
    ActorCrashed,
    AuditHealthRequest,
    HealthRequest,
    Peers,
    PeersChanged,
    PeersRequest,
    Publish,
    PublisherHealthRequest,
    ReconcileRequest,
    RunAborted,
    RunRequested,
    RunTicket,
)
from reconciliation._runtime.publisher_actor import PublisherActor
from reconciliation._runtime.results import failed_result
from reconciliation._runtime.scheduler_actor import TriggerScheduler

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciliation._domain.ageing import BreakTracker
    from reconciliation._domain.models import ReconciliationConfig, ReconciliationResult
    from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
    from reconciliation._publishing.redis_publisher import RedisPublisher
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.scheduler_actor import HaltCallback
    from reconciliation.audit._recorder import AuditRecorder

__all__ = ["ENTRY_ROLE", "MAX_RESTARTS", "RESTART_WINDOW_SECONDS", "ServiceHealth", "Supervisor"]

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
"""An actor that dies more than MAX_RESTARTS times in this window stays down."""

ACTOR_STOP_TIMEOUT_SECONDS = 5.0

ENTRY_ROLE = "debouncer"
"""The entry actor (`service.ref`) recovers in place instead of being restarted: the
engine holds its ref. Its failures are counted like restarts."""

ROLES = ("debouncer", "scheduler", "fetcher", "comparator", "publisher", "audit")
"""Start order; they stop in the same order, so the publisher and the audit store see
every last result. The audit actor runs only when an audit store is configured."""


@attrs.frozen
class ServiceHealth:
    """Whether every actor of the pipeline is running, and how often each was restarted."""

    healthy: bool
    down: tuple[str, ...]
    restarts: Mapping[str, int]
    last_failure: str | None


class Supervisor(pykka.ThreadingActor):
    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return FollowingFuture()

    def __init__(
        self,
        *,
        portfolio: PortfolioManager,
        broker: BrokerQuery,
        publisher: RedisPublisher,
        config: ReconciliationConfig,
        clock: Clock,
        tracker: BreakTracker,
        recorder: AuditRecorder | None = None,
        on_halt: HaltCallback | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._clock = clock
        self._factories: dict[str, Callable[[Peers | None], pykka.ActorRef[Any]]] = {
            "debouncer": lambda peers: FillDebouncer.start(self.actor_ref, peers, config=config, clock=clock),
            "scheduler": lambda peers: TriggerScheduler.start(
                self.actor_ref, peers, config=config, clock=clock, tracker=tracker, on_halt=on_halt
            ),
            "fetcher": lambda peers: SnapshotFetcher.start(
                self.actor_ref, peers, portfolio=portfolio, broker=broker, config=config, clock=clock
            ),
            "comparator": lambda peers: ComparatorActor.start(
                self.actor_ref, peers, config=config, clock=clock
            ),
            "publisher": lambda peers: PublisherActor.start(
                self.actor_ref, peers, publisher=publisher, clock=clock
            ),
        }
        if recorder is not None:
            self._factories["audit"] = lambda peers: AuditActor.start(
                self.actor_ref, peers, recorder=recorder, clock=clock
            )
        self._roles = tuple(role for role in ROLES if role in self._factories)
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._restarts: dict[str, collections.deque[float]] = {
            role: collections.deque() for role in self._roles
        }
        self._restart_counts: dict[str, int] = dict.fromkeys(self._roles, 0)
        self._down: set[str] = set()
        self._last_failure: str | None = None

    def on_start(self) -> None:
        for role in self._roles:
            self._refs[role] = self._factories[role](None)
        self._broadcast_peers()

    def on_receive(self, message: Any) -> Any:
        """Route and supervise; the root must outlive any mistake of its own."""
        try:
            return self._route(message)
        except Exception:
            logger.exception("The supervisor could not handle %s", type(message).__name__)
            return None

    def _route(self, message: Any) -> Any:
        if isinstance(message, ReconcileRequest):
            reply: concurrent.futures.Future[ReconciliationResult] = concurrent.futures.Future()
            self._request(RunRequested(message.account_id, OnDemand(message.requested_by), reply))
            return reply
        if isinstance(message, RunRequested):
            self._request(message)
        elif isinstance(message, ActorCrashed):
            self._on_crash(message)
        elif isinstance(message, HealthRequest):
            return self._health()
        elif isinstance(message, PeersRequest):
            return self._peers()
        elif isinstance(message, PublisherHealthRequest):
            return self._refs["publisher"].ask(message, block=False)
        elif isinstance(message, AuditHealthRequest):
            return self._refs["audit"].ask(message, block=False) if "audit" in self._refs else None
        else:
            logger.warning(
                "The reconciliation service ignored an unexpected %s: %r", type(message).__name__, message
            )
        return None

    def _request(self, request: RunRequested) -> None:
        if "scheduler" not in self._down and tell(self._refs["scheduler"], request):
            return
        ticket = RunTicket(
            run_id=uuid.uuid4(),
            account_id=request.account_id,
            trigger=request.trigger,
            started_at=self._clock.now(),
            started=self._clock.monotonic(),
        )
        result = failed_result(
            ticket, "the reconciliation service is unhealthy: its scheduler is down", ticket.started
        )
        tell(self._refs["publisher"], Publish(result))
        if request.reply is not None and not request.reply.done():
            request.reply.set_result(result)

    def _on_crash(self, crash: ActorCrashed) -> None:
        self._last_failure = f"{crash.role}: {crash.error}"
        now = self._clock.monotonic()
        recent = self._restarts[crash.role]
        while recent and now - recent[0] > RESTART_WINDOW_SECONDS:
            recent.popleft()
        if crash.role == ENTRY_ROLE:
            recent.append(now)
            self._restart_counts[crash.role] += 1
            if len(recent) > MAX_RESTARTS:
                self._down.add(crash.role)
            return
        if len(recent) >= MAX_RESTARTS:
            self._down.add(crash.role)
            logger.error(
                "The %s actor failed %d times within %g s; it stays down and the service is unhealthy: %s",
                crash.role,
                len(recent) + 1,
                RESTART_WINDOW_SECONDS,
                crash.error,
            )
        else:
            recent.append(now)
            self._restart_counts[crash.role] += 1
            logger.error("The %s actor failed (%s); restarting it", crash.role, crash.error)
            self._refs[crash.role] = self._factories[crash.role](self._peers())
            self._broadcast_peers()
        if crash.run_id is not None and crash.role != "scheduler":
            tell(
                self._refs["scheduler"],
                RunAborted(crash.run_id, f"the {crash.role} actor failed: {crash.error}"),
            )

    def _peers(self) -> Peers:
        return Peers(supervisor=self.actor_ref, **self._refs)

    def _broadcast_peers(self) -> None:
        changed = PeersChanged(self._peers())
        for ref in self._refs.values():
            tell(ref, changed)

    def _health(self) -> ServiceHealth:
        down = tuple(role for role in self._roles if role in self._down or not self._refs[role].is_alive())
        return ServiceHealth(
            healthy=not down,
            down=down,
            restarts=dict(self._restart_counts),
            last_failure=self._last_failure,
        )

    def on_stop(self) -> None:
        """Stop the pipeline in order, each actor within a bound, whatever the others do."""
        for role in self._roles:
            try:
                self._refs[role].stop(block=True, timeout=ACTOR_STOP_TIMEOUT_SECONDS)
            except pykka.Timeout:
                logger.error(  # noqa: TRY400 - the reason is the whole message
                    "The %s actor did not stop within %g s; it is left to end",
                    role,
                    ACTOR_STOP_TIMEOUT_SECONDS,
                )
