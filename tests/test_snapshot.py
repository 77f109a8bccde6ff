"""Reading both sides: concurrent, bounded, and refusing malformed data with a precise reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest

from reconciliation._domain.models import BrokerPosition, LocalAccount, Position
from reconciliation._runtime.book_calls import ALONE_AFTER_SECONDS, BookCalls
from reconciliation._runtime.clock import SystemClock
from reconciliation._runtime.fetch_loop import LOOP_BEAT_SECONDS, FetchLoop, Pulse
from reconciliation._runtime.snapshot import CHECK_CHUNK, SnapshotError, fetch_snapshot, start_snapshot
from reconciliation._runtime.workers import DaemonWorkers
from reconciliation.testing import AsyncScriptedBroker, ScriptedBroker

NOW = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)


class Book:
    def __init__(self, positions: list[Position] | None = None) -> None:
        self.positions = positions or []

    def get_positions(self, account_id: str) -> list[Position]:
        return self.positions

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, Decimal(1000), Decimal(1000))


READ_FROM = ["the loop"]
"""How `fetch` reads: `fetch_snapshot` on a loop, or `start_snapshot` from outside it, as the fetcher does."""


@pytest.fixture(autouse=True, params=["the loop", "outside the loop"])
def read_from(request: pytest.FixtureRequest) -> Iterator[None]:
    READ_FROM[0] = request.param
    yield
    READ_FROM[0] = "the loop"


def fetch(broker: ScriptedBroker, limit: float = 2.0, book: Book | None = None):  # type: ignore[no-untyped-def]
    workers = DaemonWorkers("test-call")
    calls = BookCalls(workers, monotonic=time.monotonic)
    if READ_FROM[0] == "the loop":
        try:
            return asyncio.run(fetch_snapshot(book or Book(), broker, "ACC-1", calls=calls, limit=limit, now=lambda: NOW))
        finally:
            workers.close()
    pulse, clock = Pulse(), SystemClock()
    pulse.start()
    loop = FetchLoop(1, pulse, on_beat=calls.sweep)
    loop.start()
    try:
        reading = start_snapshot(
            book or Book(),
            broker,
            "ACC-1",
            calls=calls,
            limit=limit,
            now=lambda: NOW,
            loop=loop.loop,
            call_later=None if limit >= ALONE_AFTER_SECONDS + LOOP_BEAT_SECONDS else clock.call_later,
        )
        if reading is None:
            return asyncio.run_coroutine_threadsafe(
                fetch_snapshot(book or Book(), broker, "ACC-1", calls=calls, limit=limit, now=lambda: NOW), loop.loop
            ).result(timeout=30)
        return reading.result(timeout=30)
    finally:
        loop.stop()
        pulse.stop()
        clock.close()
        workers.close()


def test_a_plain_broker_is_read() -> None:
    broker = ScriptedBroker(
        "ACC-1", [BrokerPosition("AAPL", 10, Decimal(5), Decimal(50))], cash=Decimal(1000)
    )
    snapshot = fetch(broker)
    assert snapshot.broker_positions == (BrokerPosition("AAPL", 10, Decimal(5), Decimal(50)),)
    assert snapshot.broker_account.cash == Decimal(1000)
    assert snapshot.taken_at == NOW


def test_an_async_broker_is_read() -> None:
    broker = AsyncScriptedBroker("ACC-1", [BrokerPosition("AAPL", 10, Decimal(5), Decimal(50))])
    assert fetch(broker).broker_positions[0].symbol == "AAPL"


def test_the_four_reads_run_concurrently() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_delay(0.3, call="get_positions")
    broker.then_delay(0.3, call="get_account")
    started = time.monotonic()
    fetch(broker)
    assert time.monotonic() - started < 0.55


def test_a_broker_that_raises_names_the_call_and_the_error() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_raise(ConnectionError("gateway down"))
    with pytest.raises(SnapshotError, match=r"broker\.get_positions failed: ConnectionError: gateway down"):
        fetch(broker)


def test_a_broker_that_hangs_times_out_without_waiting_for_it() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_delay(3.0, call="get_account")
    started = time.monotonic()
    with pytest.raises(SnapshotError, match=r"broker\.get_account did not answer within 0\.2 s"):
        fetch(broker, limit=0.2)
    assert time.monotonic() - started < 1.0


def test_an_async_broker_that_hangs_times_out() -> None:
    broker = AsyncScriptedBroker("ACC-1")
    broker.then_delay(3.0)
    with pytest.raises(SnapshotError, match=r"broker\.get_positions did not answer within 0\.2 s"):
        fetch(broker, limit=0.2)


def test_a_none_entry_is_malformed_data_naming_its_index() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return([BrokerPosition("AAPL", 1, Decimal(1), Decimal(1)), None])
    with pytest.raises(SnapshotError, match=r"malformed data: broker\.get_positions entry 1 is None"):
        fetch(broker)


def test_a_float_quantity_names_the_call_the_symbol_and_the_field() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return(
        [SimpleNamespace(symbol="MSFT", quantity=1.5, avg_cost=Decimal(1), market_value=Decimal(1))]
    )
    with pytest.raises(
        SnapshotError, match=r"entry 0 \(symbol 'MSFT'\): quantity must be a Decimal.*float 1\.5"
    ):
        fetch(broker)


def test_a_nan_price_is_malformed_data() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return(
        [{"symbol": "MSFT", "quantity": 1, "avg_cost": Decimal("NaN"), "market_value": Decimal(1)}]
    )
    with pytest.raises(SnapshotError, match=r"avg_cost must be a finite number"):
        fetch(broker)


def test_a_missing_field_is_named() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return([{"symbol": "MSFT", "quantity": 1, "avg_cost": Decimal(1)}])
    with pytest.raises(SnapshotError, match=r"has no field 'market_value'"):
        fetch(broker)


def test_no_list_at_all_is_malformed_data_not_an_empty_book() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return(None)
    with pytest.raises(SnapshotError, match=r"broker\.get_positions returned NoneType None, expected a list"):
        fetch(broker)


def test_an_account_for_another_id_is_refused() -> None:
    broker = ScriptedBroker("ACC-2")
    with pytest.raises(SnapshotError, match=r"broker\.get_account answered for account 'ACC-2', not 'ACC-1'"):
        fetch(broker)


def test_look_alike_objects_with_valid_fields_are_accepted() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return(
        [SimpleNamespace(symbol="MSFT", quantity=2, avg_cost=Decimal(3), market_value=Decimal(6))]
    )
    assert fetch(broker).broker_positions == (BrokerPosition("MSFT", 2, Decimal(3), Decimal(6)),)


def test_every_failing_call_is_reported_together() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_raise(TimeoutError("positions"), call="get_positions")
    broker.then_raise(OSError("account"), call="get_account")
    with pytest.raises(SnapshotError) as failure:
        fetch(broker)
    assert "broker.get_positions" in str(failure.value)
    assert "broker.get_account" in str(failure.value)


def test_look_alike_entries_with_exact_decimal_text_and_an_unknown_cost_are_read() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return(
        [{"symbol": "TSLA", "quantity": "0.523419", "avg_cost": None, "market_value": "130.854750"}]
    )

    (position,) = fetch(broker).broker_positions

    assert (position.quantity, position.avg_cost, position.market_value) == (
        Decimal("0.523419"),
        None,
        Decimal("130.854750"),
    )


def test_a_look_alike_entry_with_a_decimal_made_from_a_float_is_malformed_data_naming_it() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return([SimpleNamespace(symbol="BTC", quantity=Decimal(0.1), avg_cost=None, market_value=0)])  # noqa: RUF032 - the mistake under test

    with pytest.raises(
        SnapshotError, match=r"entry 0 \(symbol 'BTC'\): quantity is 0\.1000.*made from the float 0\.1"
    ):
        fetch(broker)


def test_dict_entries_with_fields_the_service_does_not_read_are_read_and_still_checked() -> None:
    broker = ScriptedBroker("ACC-1")
    broker.then_return(
        [
            {"symbol": "TSLA", "quantity": "2", "avg_cost": "3.5", "market_value": "7.0", "currency": "USD"},
            {"symbol": "MSFT", "quantity": 1, "avg_cost": None, "market_value": 1.5, "exchange": "NASDAQ"},
        ]
    )

    with pytest.raises(SnapshotError, match=r"entry 1 \(symbol 'MSFT'\): market_value must be a Decimal.*float 1\.5"):
        fetch(broker)


def test_dict_entries_become_the_same_positions_as_objects() -> None:
    positions = [BrokerPosition(f"S{i}", Decimal(i) - 2, Decimal(i).scaleb(-2), Decimal(i * 3)) for i in range(5)]
    broker = ScriptedBroker("ACC-1")
    broker.then_return(
        [
            {"symbol": p.symbol, "quantity": str(p.quantity), "avg_cost": str(p.avg_cost), "market_value": str(p.market_value)}
            for p in positions
        ]
    )

    assert fetch(broker).broker_positions == tuple(positions)


def test_a_book_longer_than_a_check_chunk_with_a_look_alike_in_its_last_chunk_is_parsed_whole() -> None:
    positions = [BrokerPosition(f"S{n}", 1, Decimal(1), Decimal(1)) for n in range(2 * CHECK_CHUNK)]
    broker = ScriptedBroker("ACC-1")
    broker.then_return([*positions, {"symbol": "LAST", "quantity": 1, "avg_cost": Decimal(1), "market_value": Decimal(1)}])
    snapshot = fetch(broker)
    assert len(snapshot.broker_positions) == 2 * CHECK_CHUNK + 1
    assert snapshot.broker_positions[-1] == BrokerPosition("LAST", 1, Decimal(1), Decimal(1))
