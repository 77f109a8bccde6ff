"""The service's triggers, contexts, coalescing and failed runs, end to end over fakeredis."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import attrs
import pykka
import pytest
from helpers import eventually
from service_fixtures import ACCOUNT, make_fill

from reconciliation import BrokerPosition, DiscrepancyType, ReconcileRequest, ReconciliationResult
from reconciliation._runtime.clock import ManualClock


def test_start_runs_the_startup_reconciliation(harness_factory: Any) -> None:
    harness = harness_factory()
    result = harness.start()
    assert result is not None
    assert result.context == {"trigger": "startup"}
    assert result.is_clean
    assert harness.capture.wait_for_results(1)[0]["run_id"] == str(result.run_id)


def test_start_runs_nothing_when_disabled(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, enabled=False)
    assert harness.start() is None
    clock.advance(3600)
    harness.settle()
    assert harness.capture.results == []


def test_an_on_demand_run_carries_who_asked(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    result = harness.reconcile(requested_by="ops")
    assert result.context == {"trigger": "on_demand", "requested_by": "ops"}


def test_on_demand_runs_still_work_when_disabled(harness_factory: Any) -> None:
    harness = harness_factory(enabled=False)
    harness.start()
    assert harness.reconcile().status == "ok"


def test_asking_the_ref_returns_the_result(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    result = harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="risk"), timeout=5)
    assert isinstance(result, ReconciliationResult)
    assert result.context == {"trigger": "on_demand", "requested_by": "risk"}


def test_asking_without_blocking_gives_a_future_of_the_result(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    future = harness.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
    assert isinstance(future.get(timeout=5), ReconciliationResult)


def test_another_pykka_actor_can_ask_for_a_run(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()

    class Risk(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            assert message == "check"
            return harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="risk"), timeout=5)

    risk = Risk.start()
    result = risk.ask("check", timeout=10)
    assert result.context["requested_by"] == "risk"


def test_a_discrepancy_is_found_and_published(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.broker.positions = [BrokerPosition("AAPL", 100, Decimal(150), Decimal(15000))]
    harness.broker.total_equity = Decimal(1000)
    result = harness.start()
    assert result is not None
    assert [(d.type, d.symbol) for d in result.discrepancies] == [(DiscrepancyType.MISSING_LOCAL, "AAPL")]
    assert len(harness.capture.discrepancies) == 1
    assert harness.capture.discrepancies[0]["run_id"] == str(result.run_id)


def test_periodic_runs_come_every_interval(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, interval_seconds=300)
    harness.start()
    for expected in (2, 3):
        clock.advance(299.9)
        harness.settle()
        assert len(harness.capture.results) == expected - 1
        clock.advance(0.1)
        harness.capture.wait_for_results(expected)
    assert harness.triggers() == ["startup", "periodic", "periodic"]


def test_each_result_says_when_the_next_periodic_run_is_due(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, interval_seconds=300)
    harness.start()
    harness.settle()  # the startup run's end arms the first periodic run: before the clock moves
    clock.advance(300)
    harness.capture.wait_for_results(2)

    due = [dt.datetime.fromisoformat(payload["next_run_due"]) for payload in harness.capture.results]
    assert due == [clock.now(), clock.now() + dt.timedelta(seconds=300)]


def test_a_service_without_periodic_runs_says_no_run_is_due(harness_factory: Any) -> None:
    harness = harness_factory(enabled=False)
    harness.start()
    harness.reconcile()

    assert [payload["next_run_due"] for payload in harness.capture.results] == [None]


def test_the_interval_is_measured_from_the_end_of_the_previous_run(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, interval_seconds=10)
    harness.start()
    clock.advance(8)
    harness.reconcile()
    clock.advance(3)
    harness.settle()
    assert harness.triggers() == ["startup", "on_demand"]
    clock.advance(7)
    harness.capture.wait_for_results(3)
    assert harness.triggers()[-1] == "periodic"


def test_fractional_intervals_are_honoured(harness_factory: Any) -> None:
    harness = harness_factory(interval_seconds=0.05)
    harness.start()
    harness.capture.wait_for_results(4, timeout=5)
    assert set(harness.triggers()[1:4]) == {"periodic"}


def test_a_burst_of_fills_gives_one_run_with_the_last_fill(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, post_fill_delay_seconds=5, post_fill_max_wait_seconds=60)
    harness.start()
    for n in range(3):
        harness.service.ref.tell(make_fill(n, symbol=f"SYM{n}"))
        harness.settle()
        clock.advance(1)
    clock.advance(3.9)
    harness.settle()
    assert harness.triggers() == ["startup"]
    clock.advance(0.1)
    post_fill = harness.capture.wait_for_results(2)[1]
    assert post_fill["context"] == {
        "trigger": "post_fill",
        "order_id": "ORD-2",
        "fill_id": "FILL-2",
        "symbol": "SYM2",
    }
    clock.advance(30)
    harness.settle()
    assert harness.triggers() == ["startup", "post_fill"]


def test_a_steady_stream_of_fills_is_reconciled_at_the_maximum_wait(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, post_fill_delay_seconds=5, post_fill_max_wait_seconds=12)
    harness.start()
    for n in range(12):
        asyncio.run(harness.service.on_fill(make_fill(n)))
        harness.settle()
        clock.advance(1)
    post_fill = harness.capture.wait_for_results(2)[1]
    assert post_fill["context"]["fill_id"] == "FILL-11"


def test_fills_trigger_nothing_when_disabled(harness_factory: Any) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, enabled=False)
    harness.start()
    harness.service.ref.tell(make_fill(1))
    harness.settle()
    clock.advance(3600)
    harness.settle()
    assert harness.capture.results == []


def test_triggers_during_a_run_are_coalesced_into_one_follow_up(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_delay(0.5)
    first = harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="first"), block=False)
    eventually(lambda: len(harness.broker.calls) >= 4, what="the first run's reads")
    later = [
        harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by=f"r{n}"), block=False)
        for n in range(3)
    ]
    results = [first.get(timeout=5)] + [future.get(timeout=5) for future in later]
    assert len({r.run_id for r in results}) == 2
    assert len({r.run_id for r in results[1:]}) == 1
    assert results[1].context == {"trigger": "on_demand", "requested_by": "r2"}


def test_every_asker_gets_a_run_whose_snapshot_was_taken_after_its_request(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_delay(0.4)
    harness.service.ref.ask(ReconcileRequest(ACCOUNT), block=False)
    eventually(lambda: len(harness.broker.calls) >= 4, what="the first run's reads")
    harness.broker.positions = [BrokerPosition("NEW", 1, Decimal(1), Decimal(1))]
    asked_after_the_change = harness.service.ref.ask(ReconcileRequest(ACCOUNT), timeout=5)
    assert [d.symbol for d in asked_after_the_change.discrepancies] == ["NEW"]


def test_on_demand_context_wins_over_post_fill_when_coalesced(harness_factory: Any) -> None:
    harness = harness_factory(post_fill_delay_seconds=0)
    harness.start()
    harness.broker.then_delay(1.0)
    harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="first"), block=False)
    eventually(lambda: len(harness.broker.calls) >= 4, what="the first run's reads")
    harness.service.ref.tell(make_fill(1))
    follow_up = harness.service.ref.ask(ReconcileRequest(ACCOUNT, requested_by="ops"), timeout=5)
    assert follow_up.context == {"trigger": "on_demand", "requested_by": "ops"}
    harness.settle()
    assert harness.triggers() == ["startup", "on_demand", "on_demand"]


def test_a_broker_that_raises_gives_a_failed_run_not_an_exception(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_raise(ConnectionError("gateway down"))
    result = harness.reconcile()
    assert result.status == "failed"
    assert not result.is_clean
    assert result.error is not None
    assert "broker.get_positions failed: ConnectionError: gateway down" in result.error
    published = harness.capture.results[1]
    assert (published["status"], published["is_clean"], published["error"]) == ("failed", False, result.error)


def test_a_broker_that_hangs_fails_the_run_at_the_timeout(harness_factory: Any) -> None:
    harness = harness_factory(broker_timeout_seconds=0.3)
    harness.start()
    harness.broker.then_delay(5, call="get_account")
    started = time.monotonic()
    result = harness.reconcile()
    assert time.monotonic() - started < 2
    assert result.error == "broker.get_account did not answer within 0.3 s"


def test_malformed_broker_data_fails_the_run_naming_call_symbol_and_field(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_return(
        [{"symbol": "TSLA", "quantity": 2.5, "avg_cost": Decimal(1), "market_value": 1}]
    )
    result = harness.reconcile()
    assert result.error is not None
    assert "broker.get_positions entry 0 (symbol 'TSLA'): quantity" in result.error


def test_a_failed_run_does_not_stop_later_runs(harness_factory: Any) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_raise(OSError("reset"))
    assert harness.reconcile().status == "failed"
    assert harness.reconcile().status == "ok"


def test_an_async_broker_is_reconciled_like_a_plain_one(harness_factory: Any) -> None:
    harness = harness_factory(asynchronous=True)
    harness.broker.positions = [BrokerPosition("AAPL", 5, Decimal(2), Decimal(10))]
    harness.broker.total_equity = Decimal(1000)
    result = harness.start()
    assert result is not None
    assert [d.type for d in result.discrepancies] == [DiscrepancyType.MISSING_LOCAL]


def test_an_async_broker_that_hangs_fails_the_run_at_the_timeout(harness_factory: Any) -> None:
    harness = harness_factory(asynchronous=True, broker_timeout_seconds=0.2)
    harness.start()
    harness.broker.then_delay(5)
    assert harness.reconcile().error == "broker.get_positions did not answer within 0.2 s"


def test_every_discrepancy_is_logged_at_warning_with_account_run_and_trigger(
    harness_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    harness = harness_factory()
    harness.broker.cash = Decimal(900)
    harness.broker.total_equity = Decimal(1000)
    with caplog.at_level(logging.INFO, logger="reconciliation"):
        result = harness.start()
        assert result is not None

        def warnings() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING and str(result.run_id) in r.getMessage()
            ]

        eventually(lambda: bool(warnings()), what="the warning")
        harness.stop()
    assert len(warnings()) == 1
    assert "cash_mismatch on ACC-1" in warnings()[0]
    assert "trigger startup" in warnings()[0]


def test_a_failed_run_is_logged_at_error(harness_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    harness = harness_factory()
    harness.start()
    harness.broker.then_raise(ConnectionError("gateway down"))
    with caplog.at_level(logging.ERROR, logger="reconciliation"):
        result = harness.reconcile()
        eventually(lambda: any(r.levelno == logging.ERROR for r in caplog.records), what="the error log")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(str(result.run_id) in e and "gateway down" in e and "on_demand" in e for e in errors)


def test_fills_for_accounts_the_service_does_not_reconcile_are_refused_without_a_run_or_state(
    harness_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    harness = harness_factory(clock=clock, post_fill_delay_seconds=1, interval_seconds=86_400)
    harness.start()
    before = threading.active_count()
    with caplog.at_level(logging.WARNING, logger="reconciliation"):
        for n in range(20_000):
            harness.service.ref.tell(attrs.evolve(make_fill(n), account_id=f"OTHER-{n}"))
        harness.settle()
        clock.advance(3600)
        harness.settle()
    assert harness.triggers() == ["startup"]
    assert harness.service.health().refused_fills == 20_000
    assert threading.active_count() <= before
    refusals = [r for r in caplog.records if "Refused fill" in r.getMessage()]
    assert len(refusals) == 100
    entry = harness.service.ref._actor_weakref()
    assert entry is not None
    assert entry._windows == {}
