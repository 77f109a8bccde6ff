"""The runtime: the actors that reconcile a set of accounts, wired, started and stopped as one.

    fill ─▶ debouncer ─▶ scheduler ─▶ fetcher ─▶ comparator ─┬─▶ delivery:log
    (entry,  (1)          (2)          (3)        (4)         ├─▶ delivery:redis (5)
    service.ref)                                              ├─▶ delivery:audit
                                                              └─▶ corrector ─▶ the same delivery actors

The comparator hands an account whose book is large to its large-book lane (a second
comparator, `comparator:large`, stopped right after it), so a million-position comparison
never holds the other accounts' runs behind it. Every actor is started once and never
restarted: none of them dies (see `actor_base`).
Each knows only the actors downstream of it, given at construction. A run's end flows
back through its ticket's `outcome` future, not through a message cycle. The corrector
(started only when an account has a `CorrectionPolicy`) reaches upstream — the fetcher
to apply a correction, the scheduler for the run that checks it, the comparator to
escalate a break — through `CorrectionLinks` bound to this runtime after start.

From start to stop it holds the process's collector policy (`collector`): the books,
built before start, frozen out of the collector's scans, and full collections rare.

The lease actor (`lease_actor`) keeps this runtime's leases on its accounts and tells the
scheduler which it owns: at start the runtime claims its name and the leases itself, so
that the startup runs know; a standby account is not run here.

Stopping goes downstream in order, so every run still held upstream is finished as
failed and delivered: the entry, the scheduler (which abandons its runs to the
comparator), the fetcher, the comparator, then the sinks, each given a bounded time,
and last the lease actor, which releases the leases once their runs are delivered.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import attrs

from reconciliation._domain.ageing import BreakTracker
from reconciliation._domain.correcting import ApplyOutcome
from reconciliation._domain.fencing import Fence
from reconciliation._domain.triggers import OnDemand
from reconciliation._publishing.connection import (
    PUBLISH_SOCKET_TIMEOUT_SECONDS,
    check_client,
    publishing_client,
)
from reconciliation._publishing.leases import AccountLeases, Lease
from reconciliation._publishing.redis_clients import redacted
from reconciliation._publishing.redis_sink import MAX_PAYLOADS_PER_ROUND_TRIP, RedisSink
from reconciliation._publishing.runtime_names import RuntimeName, new_instance
from reconciliation._runtime.actor_base import actor_of, tell
from reconciliation._runtime.clock import SystemClock
from reconciliation._runtime.collector import POLICY as COLLECTOR
from reconciliation._runtime.comparator_actor import AccountMemory, ComparatorActor, LargeBookLane
from reconciliation._runtime.corrector_actor import CorrectionLinks, CorrectorActor
from reconciliation._runtime.debouncer_actor import DebouncerActor
from reconciliation._runtime.delivery_actor import DeliveryActor, JournalingRef
from reconciliation._runtime.entry import EntryRef, check_request
from reconciliation._runtime.fetcher_actor import FetcherActor
from reconciliation._runtime.fills_reader import has_fills
from reconciliation._runtime.health import ComponentHealth, ComponentState, HealthBoard, ServiceHealth
from reconciliation._runtime.journal import Journal
from reconciliation._runtime.lease_actor import (
    KEY_SHARE_OF_LEASE,
    RENEWALS_PER_LEASE,
    FirstClaim,
    LeaseActor,
    first_claim,
)
from reconciliation._runtime.log_sink import LogSink
from reconciliation._runtime.messages import (
    Application,
    ApplyCorrection,
    Barrier,
    EscalateBreak,
    FillsWanted,
    InFlight,
    ReconcileRequest,
    RunRequested,
)
from reconciliation._runtime.observers import Observers
from reconciliation._runtime.scheduler_actor import SchedulerActor
from reconciliation.audit._errors import AuditStoreError
from reconciliation.audit._sink import AuditSink
from reconciliation.audit._store import open_store

if TYPE_CHECKING:
    import asyncio
    import threading
    from collections.abc import Callable, Sequence
    from uuid import UUID

    import pykka
    import redis

    from reconciliation._domain.correction import Correction
    from reconciliation._domain.models import CorrectionLimits, ReconciliationResult
    from reconciliation._domain.triggers import Trigger
    from reconciliation._runtime.accounts import Account
    from reconciliation._runtime.actor_base import Teller
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.messages import HaltCallback

__all__ = [
    "ACTOR_STOP_TIMEOUT_SECONDS",
    "DEFAULT_LEASE_SECONDS",
    "Runtime",
    "StopReport",
    "check_lease_seconds",
    "check_runtime_name",
]

logger = logging.getLogger(__name__)

ACTOR_STOP_TIMEOUT_SECONDS = 5.0
"""How long each actor has to stop; a sink that is stuck on a stalled server is then cut off."""

LOG_QUEUE_MAX_RUNS = 10_000
DEFAULT_LEASE_SECONDS = 30.0
"""The longest a dead owner's accounts wait for a standby to take them over and run them."""
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 1.0, 3600.0


def check_runtime_name(name: object) -> str | None:
    """A runtime's name as given (None: a name of its own, unique to the process).

    Raises:
        TypeError, ValueError: not a non-empty text of printable characters.
    """
    if name is None:
        return None
    if not isinstance(name, str):
        msg = f"the runtime name must be text, not {type(name).__name__}"
        raise TypeError(msg)
    if not name.strip() or not name.isprintable() or len(name) > 200:
        msg = "the runtime name must be 1 to 200 printable characters, not blank"
        raise ValueError(msg)
    return name


def check_lease_seconds(seconds: object) -> float:
    """A lease period as given, in seconds.

    Raises:
        TypeError, ValueError: not a number of seconds from 1 to 3600.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        msg = f"lease_seconds must be a number of seconds, not {type(seconds).__name__}"
        raise TypeError(msg)
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        msg = f"lease_seconds must be from {MIN_LEASE_SECONDS:g} to {MAX_LEASE_SECONDS:g} s, not {seconds}"
        raise ValueError(msg)
    return float(seconds)


@attrs.frozen
class StopReport:
    """What `Runtime.stop` could not end in time (empty: everything ended).

    .. versionadded:: 0.1
    """

    still_running: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.still_running


class Runtime:
    """Reconciles `accounts`, publishing to the Redis server `redis` talks to.

    Args:
        accounts: each account's config and books; account ids must be distinct.
        redis: a redis-py client (see `connection.check_client`).
        clock: time and timers; by default a `SystemClock` of the runtime's own.
        on_halt: the kill switch (see `HaltCallback`).
        correction_limits: what the accounts' corrections may apply together (besides each
            account's own `CorrectionPolicy.limits`); None: no limit of the runtime's own.
        name: the runtime's name, which holds its accounts' leases: unique to one live
            process, kept across restarts (a restarted process takes its leases back at
            once). None: `reconciliation@HOST:PID/RANDOM`, new at every start.
        lease_seconds: the longest a dead owner's accounts wait for a standby to take them
            over and run them (a lease is renewed three times a period, and its key kept on
            Redis for 80 % of it after each renewal).

    Raises:
        TypeError: `redis` is not a redis-py client.
        ValueError: no account, one account id twice, or accounts with different `state_dir`s.
    """

    def __init__(
        self,
        accounts: Sequence[Account],
        redis: object,
        *,
        clock: Clock | None = None,
        on_halt: HaltCallback | None = None,
        correction_limits: CorrectionLimits | None = None,
        name: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        check_client(redis)
        self._name = check_runtime_name(name)
        self._lease_seconds = check_lease_seconds(lease_seconds)
        if not accounts:
            msg = "a runtime needs at least one account"
            raise ValueError(msg)
        by_id = {account.account_id: account for account in accounts}
        if len(by_id) != len(accounts):
            counts = collections.Counter(account.account_id for account in accounts)
            twice = sorted(account_id for account_id, count in counts.items() if count > 1)
            msg = f"each account may be reconciled once: {', '.join(map(repr, twice))} appears twice"
            raise ValueError(msg)
        state_dirs = {account.config.state_dir for account in accounts}
        if len(state_dirs) > 1:
            msg = (
                "every account of a runtime has the same state_dir (one outbox journal per process), "
                f"got {', '.join(sorted(map(repr, state_dirs)))}"
            )
            raise ValueError(msg)
        self._accounts = by_id
        self._configs = {account_id: account.config for account_id, account in by_id.items()}
        self._redis = redis
        self._given_clock = clock
        self._clock: Clock | None = None
        self._on_halt = on_halt
        self._correction_limits = correction_limits
        self._board = HealthBoard()
        self.observers = Observers()
        """Who hears of each finished run and each book call (see `RuntimeObserver`)."""
        self._actors: list[pykka.ActorRef[Any]] = []
        self._entry: EntryRef | None = None
        self._scheduler: pykka.ActorRef[Any] | None = None
        self._fetcher: pykka.ActorRef[Any] | None = None
        self._comparator: pykka.ActorRef[Any] | None = None
        self._corrector: pykka.ActorRef[Any] | None = None
        self._leaseholder: pykka.ActorRef[Any] | None = None

    @property
    def entry(self) -> EntryRef | None:
        """The entry actor; None when not started."""
        return self._entry

    @property
    def is_running(self) -> bool:
        return self._entry is not None and self._entry.is_alive()

    def start(self, *, home_loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the audit stores, then start every actor (blocking; call it off the event loop).

        Args:
            home_loop: the host's event loop; `async` book methods run on it while it runs.

        Raises:
            RuntimeError: already started.
            JournalError: the `state_dir` cannot hold the outbox journal (the message says why).
            NameInUseError: another live process runs under this runtime's name.
        """
        if self._actors:
            msg = "the reconciliation runtime is already started; stop it first"
            raise RuntimeError(msg)
        owner = self._name or f"reconciliation@{socket.gethostname()}:{os.getpid()}/{uuid.uuid4().hex[:8]}"
        own_client = functools.partial(publishing_client, self._redis)  # each user, a pool of its own
        lease = self._lease_seconds
        names = RuntimeName(
            own_client,
            name=owner,
            instance=new_instance(),
            ttl_seconds=lease * KEY_SHARE_OF_LEASE,
            renew_seconds=lease / RENEWALS_PER_LEASE,
        )
        account_leases = AccountLeases(own_client, owner=owner, ttl_seconds=lease * KEY_SHARE_OF_LEASE)
        first_claimed = first_claim(names, account_leases, list(self._configs))
        COLLECTOR.hold()
        try:
            self._start_actors(home_loop, owner, own_client, names, account_leases, first_claimed)
        except BaseException:
            COLLECTOR.release()
            account_leases.release_all(a for a, held in first_claimed.ownership.items() if isinstance(held, Fence))
            names.release()
            raise

    def _start_actors(
        self,
        home_loop: asyncio.AbstractEventLoop | None,
        owner: str,
        own_client: Callable[[], redis.Redis | redis.RedisCluster],
        names: RuntimeName,
        account_leases: AccountLeases,
        first_claimed: FirstClaim,
    ) -> None:
        """Open the audit stores and start every actor, under the leases `start` claimed."""
        lease = self._lease_seconds
        clock = self._clock = self._given_clock or SystemClock()
        first = next(iter(self._configs.values()))
        journal = None if first.state_dir is None else Journal.open(first.state_dir)  # first: it may refuse
        trackers = {account_id: BreakTracker(config.ageing) for account_id, config in self._configs.items()}
        blocked: dict[str, list[UUID]] = {}
        try:
            audit_sinks = self._open_audit(trackers, blocked)
        except BaseException:
            if journal is not None:  # released, so that a start again may take it
                journal.close()
            raise
        shared = {"board": self._board, "clock": clock}

        def delivery(sink: Any, max_runs: int, **durable: Any) -> pykka.ActorRef[Any]:
            return DeliveryActor.start(
                sink=sink,
                max_runs=max_runs,
                max_batch_weight=MAX_PAYLOADS_PER_ROUND_TRIP,
                retry_max_seconds=first.publish_retry_max_seconds,
                **shared,
                **durable,
            )

        redis_sink = RedisSink(own_client, stream_maxlen=first.stream_maxlen)
        log = delivery(LogSink(), LOG_QUEUE_MAX_RUNS)
        publisher = delivery(
            redis_sink,
            first.outbox_max_runs,
            max_bytes=first.outbox_max_bytes,
            journal=None if journal is None else (journal, redis_sink),
            busy_limit_seconds=PUBLISH_SOCKET_TIMEOUT_SECONDS,
        )
        audits = {target: delivery(AuditSink(store), max_runs) for target, (store, max_runs) in audit_sinks.items()}
        to_redis: Teller = publisher if journal is None else JournalingRef(publisher, redis_sink, journal, redis_sink)
        sinks: dict[str, tuple[Teller, ...]] = {
            account_id: (to_redis, log, *((audits[config.audit_store],) if config.audit_store else ()))
            for account_id, config in self._configs.items()
        }
        corrected = {account_id: c for account_id, c in self._configs.items() if c.correction is not None}
        corrector = None
        if corrected:
            leases = AccountLeases(own_client, owner=owner, ttl_seconds=lease * KEY_SHARE_OF_LEASE)
            corrector = CorrectorActor.start(
                accounts=corrected,
                sinks={account_id: sinks[account_id] for account_id in corrected},
                links=CorrectionLinks(
                    apply=self._apply,
                    verify=functools.partial(self.request, trigger=OnDemand("correction")),
                    escalate=self._escalate,
                    may_apply=lambda account_id, fence: _refusal(account_id, leases.claim(account_id), fence),
                ),
                **shared,
                actor=owner,
                blocked=blocked,
                observers=self.observers,
                limits=self._correction_limits,
            )
            sinks = {a: (*refs, corrector) if a in corrected else refs for a, refs in sinks.items()}
        explained = [a.account_id for a in self._accounts.values() if has_fills(a.portfolio) and has_fills(a.broker)]
        comparing = {
            "accounts": self._configs,
            "trackers": trackers,
            "sinks": sinks,
            **shared,
            "on_halt": self._on_halt,
            "observers": self.observers,
            "read_fills": self._read_fills,
            "memory": AccountMemory.of(self._configs, explained),
        }
        large_lane = LargeBookLane.start(**comparing)
        comparator = ComparatorActor.start(**comparing, large_lane=large_lane)
        fetcher = FetcherActor.start(
            accounts=self._accounts,
            comparator=comparator,
            **shared,
            home_loop=home_loop,
            observers=self.observers,
        )
        scheduler = SchedulerActor.start(
            accounts=self._configs,
            fetcher=fetcher,
            comparator=comparator,
            **shared,
            explained=explained,
            ownership=first_claimed.ownership,
        )
        leaseholder = LeaseActor.start(
            leases=account_leases,
            name=names,
            first=first_claimed,
            scheduler=scheduler,
            **shared,
            lease_seconds=lease,
        )
        entry = DebouncerActor.start(accounts=self._configs, scheduler=scheduler, **shared)
        self._actors = [
            entry,
            scheduler,
            fetcher,
            comparator,
            large_lane,
            *((corrector,) if corrector else ()),
            log,
            publisher,
            *audits.values(),
            leaseholder,  # last: the leases are released once the runs made under them are delivered
        ]
        self._entry = EntryRef(cast("DebouncerActor", actor_of(entry)))
        self._scheduler = scheduler
        self._fetcher, self._comparator, self._corrector = fetcher, comparator, corrector
        self._leaseholder = leaseholder
        logger.info("Reconciliation started for %s", ", ".join(self._configs))

    def request(self, account_id: str, trigger: Trigger) -> concurrent.futures.Future[ReconciliationResult]:
        """Ask for a run of `account_id` now; the future receives its result.

        Raises:
            ValueError: the runtime does not reconcile that account.
            RuntimeError: it is not started.
        """
        check_request(ReconcileRequest(account_id), self._configs)
        if self._scheduler is None:
            msg = "the reconciliation runtime is not started"
            raise RuntimeError(msg)
        reply: concurrent.futures.Future[ReconciliationResult] = concurrent.futures.Future()
        self._scheduler.tell(RunRequested(account_id, trigger, reply))
        return reply

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every trigger fired so far (fills told, timers due) has given its run,
        and every actor has handled what followed from it (health posted, sinks fed,
        corrections applied and the runs that check them finished).

        For tests that move a `ManualClock`: after `settle()`, what has not been
        published will not be, until something else fires.

        Raises:
            TimeoutError: runs still in flight after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        scheduler = self._scheduler
        if self._entry is None or scheduler is None:
            msg = "the reconciliation runtime is not started"
            raise RuntimeError(msg)
        if self._leaseholder is not None:  # an account taken over is told to the scheduler first
            self._leaseholder.ask(Barrier(), timeout=timeout)
        self._entry.ask(Barrier(), timeout=timeout)
        corrector = self._corrector
        while True:
            outcomes: tuple[concurrent.futures.Future[Any], ...] = scheduler.ask(
                InFlight(), block=True, timeout=max(deadline - time.monotonic(), 0.001)
            )
            if corrector is not None:
                outcomes += corrector.ask(InFlight(), block=True, timeout=max(deadline - time.monotonic(), 0.001))
            if not outcomes:
                break
            _, waiting = concurrent.futures.wait(outcomes, timeout=max(deadline - time.monotonic(), 0.0))
            if waiting:
                msg = f"{len(waiting)} runs still in flight after {timeout:g} s"
                raise TimeoutError(msg)
        for ref in self._actors:
            ref.ask(Barrier(), timeout=max(deadline - time.monotonic(), 0.001))

    def stop(self, timeout: float = ACTOR_STOP_TIMEOUT_SECONDS) -> StopReport:
        """Stop every actor and thread, downstream in order (blocking). Idempotent.

        Each actor gets `timeout` seconds; a delivery actor stuck on a stalled server
        has its connections closed and gets as long again.
        """
        actors, self._actors, self._entry, self._scheduler = self._actors, [], None, None
        self._fetcher = self._comparator = self._corrector = self._leaseholder = None
        still_running: list[str] = []
        redis_stalled = False
        for ref in actors:
            name = _component(ref)
            if redis_stalled and name == LeaseActor.component:
                _close_sink(ref)  # the same stalled Redis: its leases are left to expire
            if not _stop(ref, timeout):
                logger.warning("The %s did not stop within %g s; closing its connections", name, timeout)
                _close_sink(ref)
                redis_stalled = redis_stalled or name == "delivery:redis"
                if not _stop(ref, timeout):
                    still_running.append(name)
        for ref in actors:
            thread = _thread_of(ref)
            if thread is not None and thread.is_alive():
                thread.join(timeout)
                if thread.is_alive() and _component(ref) not in still_running:
                    still_running.append(_component(ref))
        still_running.extend(self._stop_fetch_threads(actors, timeout))
        if self._given_clock is None and isinstance(self._clock, SystemClock):
            self._clock.close()
        if actors:
            COLLECTOR.release()
        self._log_stopped(still_running, timeout)
        return StopReport(tuple(still_running))

    def _log_stopped(self, still_running: Sequence[str], timeout: float) -> None:
        if still_running:
            logger.error(
                "Reconciliation stopped, but these did not end within %g s: %s", timeout, ", ".join(still_running)
            )
        else:
            logger.info("Reconciliation stopped for %s", ", ".join(self._configs))

    def health(self) -> ServiceHealth:
        """Each component's state, the way to each sink, the counters and the brokers' warnings;
        never blocks on an actor."""
        clock = self._clock
        health = self._board.read(None if clock is None else clock.now())
        actors = map(actor_of, self._actors)
        incoming = {a.sink_name: a.incoming() for a in actors if isinstance(a, DeliveryActor)}
        if incoming:
            delivery = {
                sink: attrs.evolve(d, incoming_runs=incoming.get(sink, 0)) for sink, d in health.delivery.items()
            }
            health = attrs.evolve(health, delivery=delivery)
        warnings = tuple(
            f"account {account_id}: {warning}"
            for account_id, account in self._accounts.items()
            if isinstance(warning := getattr(account.broker, "health_warning", None), str)
        )
        if warnings:
            health = attrs.evolve(health, warnings=warnings)
        if clock is not None and self._actors:
            timer = ComponentHealth(
                "timer",
                ComponentState.RUNNING if clock.is_running else ComponentState.STOPPED,
                last_error=None if clock.is_running else "the timer thread is not running: no periodic runs",
            )
            health = attrs.evolve(health, components={**health.components, "timer": timer})
        return health

    def _apply(self, correction: Correction) -> Application:
        """A `CorrectionLinks.apply`: the fetcher calls the book's `apply_correction`."""
        application = Application()
        fetcher = self._fetcher
        if fetcher is None or not fetcher.is_alive():
            application.outcome.set_result(ApplyOutcome(error="the service stopped before it was applied"))
        else:
            tell(fetcher, ApplyCorrection(correction, application))
        return application

    def _read_fills(self, wanted: FillsWanted) -> None:
        """The comparator's way to the fetcher: read the fills behind a run's breaks."""
        fetcher = self._fetcher
        if fetcher is None or not fetcher.is_alive():
            msg = "the service is stopping"
            raise RuntimeError(msg)
        tell(fetcher, wanted)

    def _escalate(self, account_id: str, break_id: UUID) -> None:
        """A `CorrectionLinks.escalate`: the comparator holds the break at CRITICAL."""
        comparator = self._comparator
        if comparator is not None:
            tell(comparator, EscalateBreak(account_id, break_id))

    def _open_audit(
        self, trackers: dict[str, BreakTracker], blocked: dict[str, list[UUID]]
    ) -> dict[str, tuple[Any, int]]:
        """Open each audit store once, seed each account's ageing from its open breaks, and
        read back (into `blocked`) the breaks a correction did not resolve, held at CRITICAL.

        A store that cannot be read now does not stop the service: ageing starts afresh
        (logged), and its delivery actor keeps trying to record.
        """
        stores: dict[str, tuple[Any, int]] = {}
        for account_id, config in self._configs.items():
            target = config.audit_store
            if target is None:
                continue
            if target not in stores:
                stores[target] = (open_store(target), config.audit_backlog_max_runs)
            store = stores[target][0]
            try:
                store.migrate()
                tracker = BreakTracker(config.ageing, store.load_open_breaks(account_id))
                if config.correction is not None:
                    blocked[account_id] = store.load_blocked_breaks(account_id)
                    for break_id in blocked[account_id]:
                        tracker.escalate(break_id)
                trackers[account_id] = tracker
            except (AuditStoreError, ValueError) as error:
                logger.error(  # noqa: TRY400 - the reason is enough; the service goes on
                    "The audit store %s could not be read (%s): break ageing of %s starts afresh",
                    redacted(target),
                    error,
                    account_id,
                )
        return stores

    @staticmethod
    def _stop_fetch_threads(actors: Sequence[pykka.ActorRef[Any]], timeout: float) -> list[str]:
        still: list[str] = []
        for ref in actors:
            for thread in getattr(actor_of(ref), "threads", ()):
                thread.join(timeout)
                if thread.is_alive():
                    still.append(thread.name)
        return still


def _refusal(account_id: str, claimed: Lease | str, fence: Fence | None) -> str | None:
    """Why a correction confirmed by a run made under `fence` may not be applied now, if it may not."""
    if isinstance(claimed, str):
        return claimed
    if fence is None:
        return (
            f"the run that confirmed it was made while Redis could not confirm this runtime's lease on "
            f"{account_id}: another runtime may have owned it then; a run under the lease confirms it again"
        )
    if fence.token != claimed.token:
        return (
            f"the run that confirmed it was made under lease token {fence.token} of {account_id}, and this "
            f"runtime now holds token {claimed.token}: another runtime may have corrected it meanwhile"
        )
    return None


def _stop(ref: pykka.ActorRef[Any], timeout: float) -> bool:
    """True when the actor has stopped within `timeout` (or was already stopped)."""
    try:
        ref.stop(block=True, timeout=timeout)
    except Exception:  # noqa: BLE001 - pykka.Timeout; anything else also means "not stopped"
        if ref.is_alive():
            return False
        thread = _thread_of(ref)
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()
    return True


def _thread_of(ref: pykka.ActorRef[Any]) -> threading.Thread | None:
    actor = actor_of(ref)
    return None if actor is None else actor.thread


def _component(ref: pykka.ActorRef[Any]) -> str:
    actor = actor_of(ref)
    return ref.actor_class.__name__ if actor is None else actor.component


def _close_sink(ref: pykka.ActorRef[Any]) -> None:
    """Unblock a delivery or lease actor stuck on Redis, from outside its thread."""
    actor = actor_of(ref)
    if isinstance(actor, DeliveryActor | LeaseActor):
        actor.cut_off()
