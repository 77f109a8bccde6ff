"""IBBroker.get_fills: TWS executions through ib_async's own client and decoder (a fake TWS answers
`reqExecutions` with wire messages), on the execution and commission report NautilusTrader recorded
from TWS (tests/fixtures/brokers/ib/) and executions written in their shape (ib_wire.json), and the
explanation it gives a position break end to end through the service."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("ib_async")

from adapter_fixtures import FIXTURES, Book, FillBook, reconcile_once, recorded
from fake_tws import FakeTws

from reconciliation import AssetType, ExplanationPolicy, Fill, Position
from reconciliation.adapters import BrokerDataError, InconsistentVenueDataError
from reconciliation.adapters.ib import IBBroker, IBThread
from reconciliation.testing import ManualClock, capture_published

ACCOUNT = "DU7654321"
BOUGHT_AT = dt.datetime(2026, 1, 5, 14, 31, 2, tzinfo=dt.UTC)
"""When the AAPL execution of ib_wire.json (BOT 10 at 187.12) was made: 09:31:02 US/Eastern."""
SINCE = dt.datetime(2026, 1, 5, 13, 0, tzinfo=dt.UTC)
AAPL_EXEC = "0000e215.656d0003.01.01"


def wire(name: str) -> list[str]:
    """A message NautilusTrader recorded from TWS, its fields as they were on the wire."""
    return (FIXTURES / "ib" / name).read_text().split("\\x00")[:-1]


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    server = FakeTws(recorded("ib_wire"))
    server.executions += [wire("execution_details_1.txt"), wire("commission_report_1.txt")]
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connection(tws: FakeTws) -> Iterator[IBThread]:
    thread = IBThread("127.0.0.1", tws.port, client_id=7, account=ACCOUNT, timeout=5)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def broker(connection: IBThread) -> IBBroker:
    return IBBroker(connection.ib, ACCOUNT, loop=connection.loop)


def fills_of(broker: IBBroker, symbol: str, since: dt.datetime = SINCE) -> list[Fill]:
    return asyncio.run(broker.get_fills(broker.account_id, symbol, since))


def execution_of(tws: FakeTws, local_symbol: str) -> list[str]:
    (message,) = [m for m in tws.executions if m[0] == "11" and m[12] == local_symbol]
    return message


def engine(aapl: str) -> FillBook:
    return Book(
        ACCOUNT,
        [
            Position("AAPL", aapl, "187.1235"),
            Position("MSFT", "2.5", "410.14"),
            Position("TSLA", "-50", "245.3507"),
            Position("AAPL  260116C00190000", "2", "3.1565", AssetType.OPTION),
            Position("ESH6", "-1", "5975.153", AssetType.FUTURE),
        ],
        cash="92021.08",
        total_equity="100003.74",
    ).booking()


def test_a_buy_the_engine_missed_is_published_explained_with_the_execution(broker: IBBroker) -> None:
    with capture_published() as capture:
        result = reconcile_once(engine("90"), broker, clock=ManualClock(start=BOUGHT_AT + dt.timedelta(minutes=10)))

    assert result.error is None
    (found,) = [d for d in capture.discrepancies if d["symbol"] == "AAPL"]
    assert (found["type"], found["local_value"], found["broker_value"]) == ("quantity_mismatch", "90", "100")
    assert found["explanation"]["verdict"] == "explained"
    assert found["explanation"]["summary"] == f"explained: broker fill {AAPL_EXEC} BUY 10 @ 187.12 14:31:02 not booked"


def test_an_execution_is_signed_by_its_side_with_its_ids_commission_and_time_in_utc(broker: IBBroker) -> None:
    assert fills_of(broker, "AAPL") == [
        Fill(AAPL_EXEC, "1351823401", "AAPL", "10", "187.12", BOUGHT_AT, AssetType.STOCK, fee="1")
    ]


def test_a_future_sold_is_negative_in_contracts_at_its_price_per_unit(broker: IBBroker) -> None:
    (sold,) = fills_of(broker, "ESH6")

    assert (sold.quantity, sold.price, sold.asset_type, sold.fee) == (
        Decimal(-1),
        Decimal("5975.25"),
        AssetType.FUTURE,
        Decimal("2.25"),
    )


def test_the_recorded_fx_execution_is_cash_not_a_fill(broker: IBBroker) -> None:
    assert fills_of(broker, "EUR.USD", dt.datetime(2023, 12, 1, tzinfo=dt.UTC)) == []


def test_the_recorded_execution_of_another_account_is_left_out(tws: FakeTws, broker: IBBroker) -> None:
    recorded_fx = execution_of(tws, "EUR.USD")
    recorded_fx[5] = "STK"

    assert fills_of(broker, "EUR.USD", dt.datetime(2023, 12, 1, tzinfo=dt.UTC)) == []
    assert recorded_fx[16] == "DU5524716"


def test_the_recorded_execution_is_read_with_its_us_eastern_time_in_utc_and_its_order(
    tws: FakeTws, connection: IBThread
) -> None:
    execution_of(tws, "EUR.USD")[5] = "STK"
    recorded_account = IBBroker(connection.ib, "DU5524716", loop=connection.loop)

    (fill,) = fills_of(recorded_account, "EUR.USD", dt.datetime(2023, 12, 1, tzinfo=dt.UTC))

    assert fill == Fill(
        "0000e215.656d0000.01.01",
        "1351823368",
        "EUR.USD",
        "1000",
        "1.08735",
        dt.datetime(2023, 12, 4, 1, 15, 20, tzinfo=dt.UTC),
        AssetType.STOCK,
    )


def test_the_executions_of_other_symbols_and_before_since_are_left_out(broker: IBBroker) -> None:
    assert [f.symbol for f in fills_of(broker, "AAPL", BOUGHT_AT + dt.timedelta(seconds=1))] == []
    assert [f.symbol for f in fills_of(broker, "MSFT")] == []


def test_tws_is_asked_for_the_accounts_executions_since_in_utc(tws: FakeTws, broker: IBBroker) -> None:
    fills_of(broker, "AAPL")

    asked = tws.requested("7")[-1]
    assert (asked[4], "20260105-13:00:00" in asked) == (ACCOUNT, True)


def test_a_fills_read_sends_only_read_requests(tws: FakeTws, broker: IBBroker) -> None:
    fills_of(broker, "AAPL")

    assert {fields[0] for fields in tws.requests} <= {"71", "61", "62", "6", "5", "7", "99", "76"}


def test_an_execution_listed_twice_is_one_fill(tws: FakeTws, broker: IBBroker) -> None:
    tws.executions.append(list(execution_of(tws, "AAPL")))

    assert [f.fill_id for f in fills_of(broker, "AAPL")] == [AAPL_EXEC]


def test_one_execution_id_with_two_sizes_is_refused_as_inconsistent(tws: FakeTws, broker: IBBroker) -> None:
    other = list(execution_of(tws, "AAPL"))
    other[19] = "12"
    tws.executions.append(other)

    with pytest.raises(InconsistentVenueDataError, match=f"execution {AAPL_EXEC} is given twice"):
        fills_of(broker, "AAPL")


@pytest.mark.parametrize(
    ("index", "value", "says"),
    [(19, "nan", "shares is nan, not a finite number"), (18, "HOLD", "side 'HOLD', neither a buy nor a sell"), (20, "inf", "price is inf")],
    ids=["NaN shares", "unknown side", "infinite price"],
)
def test_a_bad_execution_is_refused_naming_it(tws: FakeTws, broker: IBBroker, index: int, value: str, says: str) -> None:
    execution_of(tws, "AAPL")[index] = value

    with pytest.raises(BrokerDataError, match=f"IB fills of AAPL: execution '{AAPL_EXEC}'.*{says}"):
        fills_of(broker, "AAPL")


def test_a_tws_that_never_answers_executions_does_not_delay_the_break(tws: FakeTws, broker: IBBroker) -> None:
    tws.executions = []
    answers = tws._answers

    def silent_on_executions(fields: list[str]) -> list[list[str]]:
        return [] if fields[0] == "7" else answers(fields)

    tws._answers = silent_on_executions  # type: ignore[method-assign]
    policy = ExplanationPolicy(timeout_seconds=0.5, lookback_seconds=3600)

    with capture_published() as capture:
        started = time.monotonic()
        result = reconcile_once(engine("90"), broker, explanations=policy)
        took = time.monotonic() - started

    assert result.error is None
    (found,) = [d for d in capture.discrepancies if d["symbol"] == "AAPL"]
    assert found["explanation"]["verdict"] == "unexplained"
    assert "did not answer within" in found["explanation"]["note"]
    assert took < 5


def test_a_call_for_another_account_is_refused(broker: Any) -> None:
    with pytest.raises(BrokerDataError, match="reads account 'DU7654321', not 'U1234567'"):
        asyncio.run(broker.get_fills("U1234567", "AAPL", SINCE))
