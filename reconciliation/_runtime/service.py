"""The facades a trading engine starts, tells fills and asks for runs.

`ReconciliationService` reconciles one account, exactly as spec/contract.md fixes it;
`ReconciliationRuntime` reconciles many with one set of actors and threads. Both sit on
`Runtime` (see docs/architecture.md for the actors behind it).

A host whose engine runs on plain threads (pykka's own model) has no event loop: it calls
`start_blocking()` and `stop_blocking()`, which run `start()` and `stop()` on an event
loop of the facade's own, kept on a daemon thread while it runs (so that `async` book
methods have a loop to run on).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Generic, TypeVar

from reconciliation._domain.models import OrderFill, ReconciliationConfig, ReconciliationResult
from reconciliation._domain.triggers import OnDemand, Startup
from reconciliation._runtime.accounts import Account, check_books
from reconciliation._runtime.messages import ReconcileRequest
from reconciliation._runtime.runtime import DEFAULT_LEASE_SECONDS, Runtime, StopReport
from reconciliation._runtime.workers import call_in_daemon_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping, Sequence

    from reconciliation._domain.models import CorrectionLimits
    from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
    from reconciliation._domain.triggers import Trigger
    from reconciliation._runtime.clock import Clock
    from reconciliation._runtime.delivery import DeliveryHealth
    from reconciliation._runtime.entry import EntryRef
    from reconciliation._runtime.health import ServiceHealth
    from reconciliation._runtime.messages import HaltCallback
    from reconciliation._runtime.observers import RuntimeObserver

__all__ = ["ReconciliationRuntime", "ReconciliationService"]

T = TypeVar("T")
Started = TypeVar("Started")
"""What `start()` returns: each enabled account's startup result, or the one account's."""


class _Facade(Generic[Started]):
    """What both facades do the same way, on the `Runtime` below them: start its actors off
    the event loop, tell fills, stop, report health and take observers. Its arguments are
    `Runtime`'s (see `ReconciliationRuntime`)."""

    _described = "the reconciliation runtime"
    """How messages name the facade (`the reconciliation service for ACC-1`)."""

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
        self._runtime = Runtime(
            accounts,
            redis,
            clock=clock,
            on_halt=on_halt,
            correction_limits=correction_limits,
            name=name,
            lease_seconds=lease_seconds,
        )
        self._accounts = {account.account_id: account for account in accounts}
        self._started = False
        self._host_loop: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None
        """The event loop `start_blocking` made, and the thread running it."""

    def _blocking(self, call: Callable[[], Coroutine[object, object, T]], timeout: float | None) -> T:
        """Run `call()` on the facade's own event loop (made on first use) and wait for it.

        Raises:
            RuntimeError: called from a running event loop (await the coroutine there instead).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            msg = f"{self._described}: start_blocking/stop_blocking block their thread; in an event loop, await start()/stop()"
            raise RuntimeError(msg)
        if self._host_loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="reconciliation-host-loop", daemon=True)
            thread.start()
            self._host_loop = (loop, thread)
        return asyncio.run_coroutine_threadsafe(call(), self._host_loop[0]).result(timeout)

    async def start(self) -> Started:
        raise NotImplementedError

    def start_blocking(self, timeout: float | None = None) -> Started:
        """`start()` for a host without an event loop (a pykka engine on plain threads):
        blocks until the startup runs' results. Stop it with `stop_blocking()`.

        Raises:
            RuntimeError: already started, or called from a running event loop (`await start()` there).
            TimeoutError: the startup runs took longer than `timeout` seconds.
        """
        return self._blocking(self.start, timeout)

    def stop_blocking(self, timeout: float | None = None) -> StopReport:
        """`stop()` for a host without an event loop: blocks until every actor, timer and thread ended.

        Raises:
            RuntimeError: called from a running event loop (`await stop()` there).
            TimeoutError: it took longer than `timeout` seconds.
        """
        try:
            return self._blocking(self.stop, timeout)
        finally:
            if self._host_loop is not None:
                loop, thread = self._host_loop
                self._host_loop = None
                loop.call_soon_threadsafe(loop.stop)
                thread.join(5.0)
                if not thread.is_alive():
                    loop.close()

    @property
    def ref(self) -> EntryRef:
        """The entry actor: tell it `OrderFill`s, ask it `ReconcileRequest`s.

        Raises:
            RuntimeError: not started.
        """
        entry = self._runtime.entry
        if entry is None:
            msg = f"{self._described} is not started"
            raise RuntimeError(msg)
        return entry

    @property
    def is_running(self) -> bool:
        return self._runtime.is_running

    async def _start(self) -> dict[str, ReconciliationResult]:
        """Start the actors, then run the startup reconciliation of the enabled accounts, together."""
        if self._started:
            msg = f"{self._described} is already started; call stop() first"
            raise RuntimeError(msg)
        self._started = True
        home_loop = asyncio.get_running_loop()
        try:
            await call_in_daemon_thread(lambda: self._runtime.start(home_loop=home_loop))
        except BaseException:
            self._started = False
            raise
        enabled = [account_id for account_id, account in self._accounts.items() if account.config.enabled]
        results = await asyncio.gather(*(self._run(account_id, Startup()) for account_id in enabled))
        return dict(zip(enabled, results, strict=True))

    async def on_fill(self, fill: OrderFill) -> None:
        """A fill was booked: its account is reconciled once the burst has settled."""
        if not isinstance(fill, OrderFill):
            msg = f"on_fill takes an OrderFill, not {type(fill).__name__}"
            raise TypeError(msg)
        self.ref.tell(fill)

    async def stop(self) -> StopReport:
        """Stop every actor, timer and thread. Idempotent.

        Runs in flight are reported failed ("the service stopped") and delivered like any
        other; nothing is published after this returns.

        Returns:
            What did not end in time (normally nothing), also logged at ERROR.
        """
        if not self._started:
            return StopReport()
        self._started = False
        return await call_in_daemon_thread(self._runtime.stop)

    def health(self) -> ServiceHealth:
        """Each component's state (running / degraded / stopped), each sink's queue and errors."""
        return self._runtime.health()

    def add_observer(self, observer: RuntimeObserver) -> None:
        """Hear of every finished run and every book call (metrics, say); before or after start.

        The observer is called in the runtime's threads and must be quick.

        Raises:
            TypeError: it does not implement `RuntimeObserver`.
        """
        self._runtime.observers.add(observer)

    def remove_observer(self, observer: RuntimeObserver) -> None:
        self._runtime.observers.remove(observer)

    async def _run(self, account_id: str, trigger: Trigger) -> ReconciliationResult:
        return await asyncio.wrap_future(self._runtime.request(account_id, trigger))


class ReconciliationRuntime(_Facade[dict[str, ReconciliationResult]]):
    """Reconciles many accounts in one process, sharing one set of actors and threads.

    Each account keeps its own config, triggers, debounce window, ageing and run order;
    a slow or hung broker delays only its own account's runs. Redis publishing settings
    (`stream_maxlen`, `outbox_max_runs`, `publish_retry_max_seconds`) are shared and
    taken from the first account's config; an audit store is shared by the accounts
    that name it.

    Args:
        accounts: each account's config and books (`Account`); account ids are distinct.
        redis: a redis-py client, as for `ReconciliationService`.
        clock: time and timers; a `ManualClock` in tests.
        on_halt: the kill switch, as for `ReconciliationService`.
        correction_limits: what the accounts' corrections may apply together, besides each
            account's own limits (`CorrectionPolicy.limits`); None: no limit of its own.
        name: the runtime's name, which holds its accounts' leases (see `Runtime`): unique
            to one live process, kept across its restarts. None: a new name at each start.
        lease_seconds: how long an account's lease outlives its holder (30 s): a second
            process given the same accounts takes a dead owner's over within this long.

    Raises:
        TypeError: a book that does not implement its protocol, or a `redis` that is
            not a redis-py client.
        ValueError: no account, one account id twice, or accounts with different `state_dir`s.

    .. versionadded:: 0.1
    """

    @property
    def accounts(self) -> Mapping[str, Account]:
        return self._accounts

    async def start(self) -> dict[str, ReconciliationResult]:
        """Start the actors and run every enabled account's startup reconciliation, together.

        `async` book methods that belong to this event loop are run on it.

        Returns:
            Each enabled account's startup result.

        Raises:
            RuntimeError: already started.
        """
        return await self._start()

    async def reconcile(self, account_id: str, *, requested_by: str = "api") -> ReconciliationResult:
        """Run `account_id` now; the result of a run whose snapshot was taken after this call.

        Raises:
            TypeError, ValueError: an account id or requester that is not a non-empty str,
                or an account this runtime does not reconcile.
            RuntimeError: not started.
        """
        request = ReconcileRequest(account_id, requested_by)
        return await self._run(request.account_id, OnDemand(request.requested_by))


class ReconciliationService(_Facade[ReconciliationResult | None]):
    """Reconciles `config.account_id` at startup, periodically, after fills and on demand.

    Args:
        portfolio: the engine's book (plain or async methods).
        broker_query: the broker's view (plain or async methods).
        redis: a redis-py client — `redis.Redis`, `redis.asyncio.Redis` or
            `redis.RedisCluster` (or a fakeredis one); every run and discrepancy is
            published to the server it talks to, through a connection of the service's own.
        config: intervals, tolerances, severities; see docs/configuration.md.
        clock: time and timers; a `ManualClock` in tests. By default the service runs
            its own timer thread, stopped by `stop()`.
        on_halt: the kill switch, called as `on_halt(break_state, result)` once for each
            CRITICAL break confirmed by `config.ageing.halt_after_runs` consecutive runs
            (off unless that is set). It runs on the comparator's thread: keep it quick,
            e.g. tell the engine's risk actor.
        name, lease_seconds: the account's lease, as for `ReconciliationRuntime`.

    Raises:
        TypeError: a book that does not implement its protocol, a `redis` that is not a
            redis-py client (a URL, say), or a `config` that is not a `ReconciliationConfig`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        portfolio: PortfolioManager,
        broker_query: BrokerQuery,
        redis: object,
        config: ReconciliationConfig,
        *,
        clock: Clock | None = None,
        on_halt: HaltCallback | None = None,
        name: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        check_books(portfolio, broker_query)
        if not isinstance(config, ReconciliationConfig):
            msg = f"config must be a ReconciliationConfig, not {type(config).__name__}"
            raise TypeError(msg)
        super().__init__(
            [Account(config, portfolio, broker_query)],
            redis,
            clock=clock,
            on_halt=on_halt,
            name=name,
            lease_seconds=lease_seconds,
        )
        self._described = f"the reconciliation service for {config.account_id}"
        self._config = config

    @property
    def config(self) -> ReconciliationConfig:
        return self._config

    async def start(self) -> ReconciliationResult | None:
        """Start the actors and run the startup reconciliation.

        Returns:
            The startup run's result, or None when `config.enabled` is False.

        Raises:
            RuntimeError: if the service is already started.
        """
        return (await self._start()).get(self._config.account_id)

    async def reconcile(
        self, account_id: str | None = None, *, requested_by: str = "api"
    ) -> ReconciliationResult:
        """Run now and return the result of a run whose snapshot was taken after this call.

        Raises:
            TypeError, ValueError: an account id or requester that is not a non-empty str,
                or an account this service does not reconcile.
            RuntimeError: the service is not started.
        """
        request = ReconcileRequest(self._config.account_id if account_id is None else account_id, requested_by)
        return await self._run(request.account_id, OnDemand(request.requested_by))

    def publisher_health(self) -> DeliveryHealth:
        """The way to Redis: queued, delivered, dropped and set-aside runs, the last error."""
        return self.health().delivery["redis"]

    def audit_health(self) -> DeliveryHealth | None:
        """The way to the audit store; None without one."""
        return self.health().delivery.get("audit")
