"""Starting and stopping: clear errors, bounded stops, nothing published afterwards, no leaks."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any

import fakeredis
import pykka
import pytest
from helpers import eventually
from service_fixtures import ACCOUNT

from reconciliation import InMemoryPortfolio, ReconcileRequest, ReconciliationConfig, ReconciliationService
from reconciliation.testing import ScriptedBroker


def test_starting_twice_is_an_error_that_says_what_to_do(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    with pytest.raises(RuntimeError, match="already started; call stop"):
        harness.start()


def test_stop_is_idempotent(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.stop()
    harness.stop()
    assert not harness.service.is_running


def test_using_the_ref_before_start_is_a_clear_error(harness_factory: Any) -> None:
    harness = harness_factory()
    with pytest.raises(RuntimeError, match="is not started"):
        _ = harness.service.ref


def test_a_stopped_service_can_be_started_again(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.stop()
    assert harness.start() is not None
    assert harness.reconcile().status == "ok"


def test_stop_abandons_an_in_flight_run_within_a_bound(harness_factory: Any) -> None:
    harness = harness_factory(broker_timeout_seconds=30)
    harness.start()
    harness.broker.then_delay(10)
    pending = harness.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
    eventually(lambda: len(harness.broker.calls) >= 4, what="the run's reads")
    started = time.monotonic()
    harness.stop()
    assert time.monotonic() - started < 3
    abandoned = pending.get(timeout=1)
    assert abandoned.status == "failed"
    assert abandoned.error == "the service stopped before the run completed"


def test_the_abandoned_run_is_published_before_stop_returns(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_delay(10)
    harness.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
    eventually(lambda: len(harness.broker.calls) >= 4, what="the run's reads")
    harness.stop()
    results = harness.capture.wait_for_results(2)
    assert results[1]["status"] == "failed"


def test_nothing_is_published_after_stop_returns(harness_factory: Any) -> None:
    harness = harness_factory(interval_seconds=0.02, post_fill_delay_seconds=0)
    harness.start()
    harness.capture.wait_for_results(3)
    harness.stop()
    time.sleep(0.05)
    published = len(harness.capture.messages)
    time.sleep(0.3)
    assert len(harness.capture.messages) == published


def test_the_constructor_refuses_what_is_not_a_portfolio() -> None:
    with pytest.raises(TypeError, match="portfolio must implement PortfolioManager"):
        ReconciliationService(
            object(), ScriptedBroker(ACCOUNT), fakeredis.FakeRedis(), ReconciliationConfig(ACCOUNT)
        )  # type: ignore[arg-type]


def test_the_constructor_refuses_what_is_not_a_broker() -> None:
    book = InMemoryPortfolio(ACCOUNT, cash=Decimal(0))
    with pytest.raises(TypeError, match="broker_query must implement BrokerQuery"):
        ReconciliationService(book, object(), fakeredis.FakeRedis(), ReconciliationConfig(ACCOUNT))  # type: ignore[arg-type]


def _cycle(service: ReconciliationService) -> None:
    asyncio.run(service.start())
    asyncio.run(service.stop())


def test_a_thousand_start_stop_cycles_leave_no_thread_behind() -> None:
    redis = fakeredis.FakeRedis()
    book = InMemoryPortfolio(ACCOUNT, cash=Decimal(0))
    broker = ScriptedBroker(ACCOUNT)
    service = ReconciliationService(book, broker, redis, ReconciliationConfig(ACCOUNT, enabled=False))
    _cycle(service)
    before = {t.ident for t in threading.enumerate()}
    for _ in range(1000):
        _cycle(service)
    eventually(lambda: {t.ident for t in threading.enumerate()} <= before, what="every thread ending")
    assert pykka.ActorRegistry.get_all() == []


def test_start_stop_cycles_with_startup_runs_leave_no_thread_behind() -> None:
    redis = fakeredis.FakeRedis()
    service = ReconciliationService(
        InMemoryPortfolio(ACCOUNT, cash=Decimal(0)),
        ScriptedBroker(ACCOUNT),
        redis,
        ReconciliationConfig(ACCOUNT),
    )
    _cycle(service)
    before = {t.ident for t in threading.enumerate()}
    for _ in range(50):
        _cycle(service)
    eventually(lambda: {t.ident for t in threading.enumerate()} <= before, what="every thread ending")


def test_an_on_demand_run_for_an_empty_account_id_is_a_clear_error(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    with pytest.raises(ValueError, match="account_id must not be empty"):
        asyncio.run(harness.service.reconcile(""))


class TestBlockingHost:
    """A pykka engine on plain threads, without an event loop: start_blocking / stop_blocking."""

    @staticmethod
    def service() -> ReconciliationService:
        broker = ScriptedBroker(ACCOUNT, cash=Decimal(1000), total_equity=Decimal(1000))
        return ReconciliationService(
            InMemoryPortfolio(ACCOUNT, cash=Decimal(1000)), broker, fakeredis.FakeRedis(), ReconciliationConfig(ACCOUNT)
        )

    def test_start_blocking_returns_the_startup_run_and_the_ref_answers(self) -> None:
        service = self.service()

        started = service.start_blocking(timeout=10)
        try:
            answered = service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="risk"), timeout=10)
        finally:
            report = service.stop_blocking(timeout=10)

        assert started is not None
        assert (started.trigger, answered.status) == ("startup", "ok")
        assert report.clean

    def test_stop_blocking_leaves_no_thread_of_its_own(self) -> None:
        service = self.service()
        service.start_blocking(timeout=10)

        service.stop_blocking(timeout=10)

        assert not service.is_running
        assert "reconciliation-host-loop" not in {thread.name for thread in threading.enumerate()}

    def test_start_blocking_inside_an_event_loop_says_to_await_start(self) -> None:
        service = self.service()

        async def inside() -> None:
            service.start_blocking()

        with pytest.raises(RuntimeError, match=r"in an event loop, await start\(\)/stop\(\)"):
            asyncio.run(inside())
