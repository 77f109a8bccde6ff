"""Many accounts in one `ReconciliationRuntime`: one set of threads, each account on its own."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest

from reconciliation import (
    Account,
    BrokerPosition,
    InMemoryPortfolio,
    OrderFill,
    ReconciliationConfig,
    ReconciliationRuntime,
)
from reconciliation._domain.models import LocalAccount, Position
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.comparator_actor import LARGE_RUN
from reconciliation.testing import PublishedCapture, ScriptedBroker, capture_published, settle

if TYPE_CHECKING:
    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.observers import BookCallTiming

WORKER_POOL = 16


def account(account_id: str, broker: Any = None, **config: Any) -> Account:
    return Account(
        ReconciliationConfig(account_id, **config),
        InMemoryPortfolio(account_id, Decimal(1000)),
        broker if broker is not None else ScriptedBroker(account_id, cash=Decimal(1000)),
    )


def runs_of(capture: PublishedCapture, account_id: str) -> list[str]:
    return [result.trigger for result in capture.runs() if result.account_id == account_id]


class HangingBroker(ScriptedBroker):
    """get_positions blocks its thread until `release` is set, as a broker stuck on a socket does."""

    def __init__(self, account_id: str) -> None:
        super().__init__(account_id, cash=Decimal(1000))
        self.release = threading.Event()
        self.hanging = False

    def get_positions(self, account_id: str) -> list[BrokerPosition]:  # type: ignore[override]
        self.hanging = True
        self.release.wait(30)
        return []


def thread_growth(accounts: int) -> int:
    """How many threads a started runtime of `accounts` accounts adds, after every startup run."""
    before = threading.active_count()
    runtime = ReconciliationRuntime([account(f"ACC-{n}") for n in range(accounts)], fakeredis.FakeRedis())
    asyncio.run(runtime.start())
    try:
        return threading.active_count() - before
    finally:
        asyncio.run(runtime.stop())


def test_fifty_accounts_run_on_the_threads_of_one_plus_at_most_the_shared_worker_pool() -> None:
    one, fifty = thread_growth(1), thread_growth(50)

    assert fifty <= one + WORKER_POOL
    assert fifty <= 40


def test_every_accounts_startup_run_is_returned_by_start() -> None:
    runtime = ReconciliationRuntime([account("A"), account("B")], fakeredis.FakeRedis(), clock=ManualClock())

    results = asyncio.run(runtime.start())
    asyncio.run(runtime.stop())

    assert {account_id: result.trigger for account_id, result in results.items()} == {
        "A": "startup",
        "B": "startup",
    }


def test_a_hung_broker_fails_only_its_own_accounts_runs_and_never_delays_the_others() -> None:
    hanging = HangingBroker("SLOW")
    runtime = ReconciliationRuntime(
        [account("SLOW", hanging, broker_timeout_seconds=0.3), account("FAST")], fakeredis.FakeRedis()
    )

    async def scenario() -> tuple[Any, Any]:
        await runtime.start()
        fast = await runtime.reconcile("FAST")
        slow = await runtime.reconcile("SLOW")
        return fast, slow

    try:
        fast, slow = asyncio.run(scenario())
        still_hanging = not hanging.release.is_set()
    finally:
        hanging.release.set()
        asyncio.run(runtime.stop())

    assert still_hanging
    assert fast.error is None
    assert slow.error is not None
    assert "still running from an earlier run" in slow.error


def test_each_account_runs_at_its_own_interval() -> None:
    clock = ManualClock()
    runtime = ReconciliationRuntime(
        [account("EVERY-10", interval_seconds=10), account("EVERY-30", interval_seconds=30)],
        fakeredis.FakeRedis(),
        clock=clock,
    )
    with capture_published() as capture:
        asyncio.run(runtime.start())
        settle(runtime)
        for _ in range(3):
            clock.advance(10)
            settle(runtime)
        asyncio.run(runtime.stop())

    assert runs_of(capture, "EVERY-10") == ["startup", "periodic", "periodic", "periodic"]
    assert runs_of(capture, "EVERY-30") == ["startup", "periodic"]


def test_accounts_started_together_have_their_periodic_runs_spread_over_the_interval() -> None:
    clock = ManualClock()
    ids = ["A", "B", "C", "D"]
    runtime = ReconciliationRuntime(
        [account(account_id, interval_seconds=40) for account_id in ids], fakeredis.FakeRedis(), clock=clock
    )
    periodic_at: dict[int, list[str]] = {}
    with capture_published() as capture:
        asyncio.run(runtime.start())
        settle(runtime)
        seen = len(capture.runs())
        for second in range(10, 90, 10):
            clock.advance(10)
            settle(runtime)
            periodic_at[second] = [result.account_id for result in capture.runs()[seen:]]
            seen = len(capture.runs())
        asyncio.run(runtime.stop())

    assert periodic_at == {
        10: ["D"], 20: ["C"], 30: ["B"], 40: ["A"], 50: ["D"], 60: ["C"], 70: ["B"], 80: ["A"],
    }


def test_an_account_keeps_its_phase_when_its_startup_run_outlasts_it() -> None:
    clock = ManualClock()
    hanging = HangingBroker("LATE")
    runtime = ReconciliationRuntime(
        [account("EARLY", interval_seconds=40), account("LATE", hanging, interval_seconds=40)],
        fakeredis.FakeRedis(),
        clock=clock,
    )

    async def startup_past_the_phase() -> None:
        starting = asyncio.ensure_future(runtime.start())
        while not hanging.hanging:  # noqa: ASYNC110 - the startup run is in the broker
            await asyncio.sleep(0.01)
        clock.advance(25)  # LATE's phase: its first periodic run was due 20 s after start
        hanging.release.set()
        await starting

    with capture_published() as capture:
        asyncio.run(startup_past_the_phase())
        settle(runtime)
        after_the_startup_run = runs_of(capture, "LATE")
        clock.advance(34)
        settle(runtime)
        before_its_phase_comes_round = runs_of(capture, "LATE")
        clock.advance(1)
        settle(runtime)
        asyncio.run(runtime.stop())

    assert after_the_startup_run == ["startup"]
    assert before_its_phase_comes_round == ["startup"]
    assert runs_of(capture, "LATE") == ["startup", "periodic"]


def test_a_single_account_runs_a_whole_interval_after_its_startup_run() -> None:
    clock = ManualClock()
    runtime = ReconciliationRuntime([account("ONLY", interval_seconds=40)], fakeredis.FakeRedis(), clock=clock)
    with capture_published() as capture:
        asyncio.run(runtime.start())
        settle(runtime)
        clock.advance(39)
        settle(runtime)
        before_the_interval = runs_of(capture, "ONLY")
        clock.advance(1)
        settle(runtime)
        asyncio.run(runtime.stop())

    assert before_the_interval == ["startup"]
    assert runs_of(capture, "ONLY") == ["startup", "periodic"]


def test_a_fill_starts_a_run_of_its_own_account_only_after_that_accounts_debounce_window() -> None:
    clock = ManualClock()
    runtime = ReconciliationRuntime(
        [account("QUICK", post_fill_delay_seconds=1), account("PATIENT", post_fill_delay_seconds=5)],
        fakeredis.FakeRedis(),
        clock=clock,
    )
    with capture_published() as capture:
        asyncio.run(runtime.start())
        for account_id in ("QUICK", "PATIENT"):
            asyncio.run(runtime.on_fill(fill(account_id)))
        settle(runtime)
        clock.advance(1)
        settle(runtime)
        after_one_second = (runs_of(capture, "QUICK"), runs_of(capture, "PATIENT"))
        clock.advance(4)
        settle(runtime)
        asyncio.run(runtime.stop())

    assert after_one_second == (["startup", "post_fill"], ["startup"])
    assert runs_of(capture, "PATIENT") == ["startup", "post_fill"]


def test_an_account_the_runtime_does_not_reconcile_is_refused_by_name() -> None:
    runtime = ReconciliationRuntime([account("A")], fakeredis.FakeRedis(), clock=ManualClock())
    asyncio.run(runtime.start())
    try:
        with pytest.raises(ValueError, match="B"):
            asyncio.run(runtime.reconcile("B"))
    finally:
        asyncio.run(runtime.stop())


def test_one_account_id_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'A' appears twice"):
        ReconciliationRuntime([account("A"), account("B"), account("A")], fakeredis.FakeRedis())


def fill(account_id: str) -> OrderFill:
    import datetime as dt  # noqa: PLC0415

    return OrderFill(
        "ORD-1", "FILL-1", account_id, "AAPL", Decimal(1), Decimal(100), dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    )


class FixedBook:
    """A portfolio that holds `positions` and 1000 in cash."""

    def __init__(self, positions: list[Position]) -> None:
        self.positions = positions

    def get_positions(self, account_id: str) -> list[Position]:
        return self.positions

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, Decimal(1000), Decimal(1000))


class HoldingObserver:
    """Holds the thread that finishes `account_id`'s runs until `release` is set, as a long
    comparison would hold it."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.holding = threading.Event()
        self.release = threading.Event()

    def run_finished(self, run: FinishedRun) -> None:
        if run.result.account_id == self.account_id:
            self.holding.set()
            self.release.wait(30)

    def book_call_ended(self, timing: BookCallTiming) -> None:
        pass


def large_account(account_id: str) -> Account:
    count = LARGE_RUN // 2 + 1
    local = [Position(f"S{n}", Decimal(1), Decimal(1)) for n in range(count)]
    broker = [BrokerPosition(f"S{n}", Decimal(1), Decimal(1), Decimal(1)) for n in range(count)]
    return Account(
        ReconciliationConfig(account_id),
        FixedBook(local),
        ScriptedBroker(account_id, broker, cash=Decimal(1000), total_equity=Decimal(1000)),
    )


def test_a_large_book_held_in_its_comparison_does_not_hold_another_accounts_run_behind_it() -> None:
    runtime = ReconciliationRuntime([large_account("BIG"), account("SMALL")], fakeredis.FakeRedis(), clock=ManualClock())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    observer = HoldingObserver("BIG")
    try:
        asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(timeout=30)
        runtime.add_observer(observer)
        big = asyncio.run_coroutine_threadsafe(runtime.reconcile("BIG"), loop)
        assert observer.holding.wait(30), "the large book's run never reached its finish"

        small = asyncio.run_coroutine_threadsafe(runtime.reconcile("SMALL"), loop).result(timeout=30)

        assert small.status == "ok"
        assert not big.done()
        observer.release.set()
        assert big.result(timeout=30).status == "ok"
        assert runtime.health().components["comparator:large"].state.value == "running"
    finally:
        observer.release.set()
        asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
