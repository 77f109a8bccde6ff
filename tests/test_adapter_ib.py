"""IBBroker against ib_async's own client and decoder, connected to a TWS that answers recorded wire messages."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("ib_async")

from adapter_fixtures import FIXTURES, Book, found, reconcile_once, recorded
from fake_tws import FakeTws
from ib_async import IB

from reconciliation import (
    Account,
    AssetType,
    BrokerAccount,
    BrokerPosition,
    DiscrepancyType,
    Position,
    ReconciliationConfig,
)
from reconciliation.adapters import BrokerDataError
from reconciliation.adapters.ib import IBBroker, IBThread

ACCOUNT = "DU7654321"
STOCK, OPTION, FUTURE = AssetType.STOCK, AssetType.OPTION, AssetType.FUTURE
QUANTITY, MISSING_LOCAL, MISSING_BROKER, COST, CASH = (
    DiscrepancyType.QUANTITY_MISMATCH,
    DiscrepancyType.MISSING_LOCAL,
    DiscrepancyType.MISSING_BROKER,
    DiscrepancyType.COST_MISMATCH,
    DiscrepancyType.CASH_MISMATCH,
)
OPTION_SYMBOL = "AAPL  260116C00190000"


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    server = FakeTws(recorded("ib_wire"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connection(tws: FakeTws) -> Iterator[IBThread]:
    """IB connected on a loop of its own, as `reconciliation run` connects it."""
    thread = IBThread("127.0.0.1", tws.port, client_id=7, account=ACCOUNT, timeout=5)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def broker(connection: IBThread) -> IBBroker:
    return IBBroker(connection.ib, ACCOUNT, loop=connection.loop)


@pytest.fixture
def book() -> Book:
    return Book(
        ACCOUNT,
        [
            Position("AAPL", "100", "187.1235"),
            Position("MSFT", "2.5", "410.14"),
            Position("TSLA", "-50", "245.3507"),
            Position(OPTION_SYMBOL, "2", "3.1565", OPTION),
            Position("ESH6", "-1", "5975.153", FUTURE),
        ],
        cash="92021.08",
        total_equity="100003.74",
    )


def positions_of(broker: IBBroker) -> dict[str, BrokerPosition]:
    return {p.symbol: p for p in asyncio.run(broker.get_positions(ACCOUNT))}


def account_of(broker: IBBroker) -> BrokerAccount:
    return asyncio.run(broker.get_account(ACCOUNT))


def without(messages: list[list[str]], local_symbol: str, index: int) -> list[list[str]]:
    return [m for m in messages if len(m) <= index or m[index] != local_symbol]


def test_a_clean_book_gives_a_clean_run(broker: IBBroker, book: Book) -> None:
    result = reconcile_once(book, broker)

    assert (result.error, result.discrepancies, result.positions_checked) == (None, (), 5)


def test_positions_are_named_by_local_symbol_typed_by_sec_type_and_costed_per_unit(broker: IBBroker) -> None:
    assert [(s, str(p.quantity), str(p.avg_cost), p.asset_type) for s, p in positions_of(broker).items()] == [
        ("AAPL", "100", "187.1235", STOCK),
        ("MSFT", "2.5", "410.14", STOCK),
        ("TSLA", "-50", "245.3507", STOCK),
        (OPTION_SYMBOL, "2", "3.1565", OPTION),
        ("ESH6", "-1", "5975.153", FUTURE),
    ]


def test_market_values_come_from_the_portfolio(broker: IBBroker) -> None:
    held = positions_of(broker)

    assert (held["TSLA"].market_value, held["ESH6"].market_value) == (Decimal(-12500), Decimal("-299012.5"))


def test_a_closed_position_of_size_zero_and_an_fx_cash_position_are_left_out(broker: IBBroker) -> None:
    assert {"NVDA", "EUR.USD"}.isdisjoint(positions_of(broker))


def test_cash_is_total_cash_value_and_equity_net_liquidation_with_cash_per_currency(broker: IBBroker) -> None:
    account = account_of(broker)

    assert (account.cash, account.total_equity, account.buying_power, account.margin_used) == (
        Decimal("92021.08"),
        Decimal("100003.74"),
        Decimal("301234.56"),
        Decimal("19368.94"),
    )
    assert dict(account.cash_by_currency or {}) == {"USD": Decimal("78935.08"), "EUR": Decimal("12000.00")}


def test_a_stock_and_its_option_stay_apart(broker: IBBroker, book: Book) -> None:
    only_the_stock = book.without(OPTION_SYMBOL)

    assert found(reconcile_once(only_the_stock, broker)) == [(MISSING_LOCAL, OPTION_SYMBOL, None, "2")]


def test_a_missed_fill_is_one_quantity_mismatch(broker: IBBroker, book: Book) -> None:
    missed = book.replacing("AAPL", Position("AAPL", "90", "187.1235"))

    assert found(reconcile_once(missed, broker)) == [(QUANTITY, "AAPL", "90", "100")]


def test_a_phantom_position_is_one_missing_broker(broker: IBBroker, book: Book) -> None:
    phantom = book.adding(Position("NVDA", "10", "135"))

    assert found(reconcile_once(phantom, broker)) == [(MISSING_BROKER, "NVDA", "10", None)]


def test_a_short_the_book_missed_is_one_missing_local_with_its_sign(broker: IBBroker, book: Book) -> None:
    assert found(reconcile_once(book.without("TSLA"), broker)) == [(MISSING_LOCAL, "TSLA", None, "-50")]


def test_a_fractional_quantity_is_compared_exactly(broker: IBBroker, book: Book) -> None:
    rounded = book.replacing("MSFT", Position("MSFT", "2", "410.14"))

    assert found(reconcile_once(rounded, broker)) == [(QUANTITY, "MSFT", "2", "2.5")]


def test_a_future_booked_in_units_of_its_underlying_is_one_quantity_mismatch(
    broker: IBBroker, book: Book
) -> None:
    in_units = book.replacing("ESH6", Position("ESH6", "-50", "5975.153", FUTURE))

    assert found(reconcile_once(in_units, broker)) == [(QUANTITY, "ESH6", "-50", "-1")]


def test_commission_in_ibs_cost_is_an_info_break_without_a_cost_tolerance(
    broker: IBBroker, book: Book
) -> None:
    at_fill_price = book.replacing("AAPL", Position("AAPL", "100", "187.12"))

    (cost,) = reconcile_once(at_fill_price, broker).discrepancies

    assert (cost.type, cost.severity.value, cost.local_value, cost.broker_value) == (
        COST,
        "info",
        Decimal("187.12"),
        Decimal("187.1235"),
    )


def test_commission_in_ibs_cost_within_the_cost_tolerance_is_no_break(broker: IBBroker, book: Book) -> None:
    at_fill_price = book.replacing("AAPL", Position("AAPL", "100", "187.12"))

    result = reconcile_once(at_fill_price, broker, cost_tolerance_pct=Decimal("0.01"))

    assert (result.error, result.discrepancies) == (None, ())


def test_cash_is_compared_per_currency_when_the_book_keeps_it(broker: IBBroker, book: Book) -> None:
    by_currency = Book(
        ACCOUNT,
        book.positions,
        cash="91900.00",
        total_equity="100003.74",
        cash_by_currency={"USD": "78935.08", "EUR": "11990.00"},
    )

    (eur,) = reconcile_once(by_currency, broker).discrepancies

    assert (eur.type, eur.currency, eur.local_value, eur.broker_value) == (
        CASH,
        "EUR",
        Decimal("11990.00"),
        Decimal("12000.00"),
    )


def test_every_call_runs_on_the_ib_connections_loop(connection: IBThread, broker: IBBroker) -> None:
    seen: list[str] = []
    connection.ib.positionEvent += lambda _position: seen.append(threading.current_thread().name)

    positions_of(broker)

    assert set(seen) == {f"ib-127.0.0.1:{connection.ib.client.port}#7"}


def test_a_broker_made_on_the_connections_own_loop_calls_it_directly(tws: FakeTws) -> None:
    async def session() -> tuple[list[BrokerPosition], BrokerAccount]:
        ib = IB()
        await ib.connectAsync("127.0.0.1", tws.port, clientId=8, account=ACCOUNT, timeout=5, readonly=True)
        try:
            broker = IBBroker(ib, ACCOUNT)
            return await broker.get_positions(ACCOUNT), await broker.get_account(ACCOUNT)
        finally:
            ib.disconnect()

    positions, account = asyncio.run(session())

    assert (len(positions), account.cash) == (5, Decimal("92021.08"))


def test_positions_are_requested_fresh_from_tws_on_every_call(tws: FakeTws, broker: IBBroker) -> None:
    before = len(tws.requested("61"))
    tws.positions = without(tws.positions, "AAPL", 12)

    assert "AAPL" not in positions_of(broker)
    assert len(tws.requested("61")) == before + 1


def test_a_disconnected_ib_fails_the_run_instead_of_reporting_stale_positions(
    connection: IBThread, broker: IBBroker, book: Book
) -> None:
    async def disconnect() -> None:
        connection.ib.disconnect()

    asyncio.run_coroutine_threadsafe(disconnect(), connection.loop).result(5)

    result = reconcile_once(book, broker)

    assert result.discrepancies == ()
    assert "IB is not connected (account DU7654321)" in (result.error or "")


def test_a_loop_that_is_not_running_is_refused_at_once(connection: IBThread) -> None:
    idle = asyncio.new_event_loop()
    try:
        with pytest.raises(ConnectionError, match="the IB connection's event loop is not running"):
            asyncio.run(IBBroker(connection.ib, ACCOUNT, loop=idle).get_positions(ACCOUNT))
    finally:
        idle.close()


def test_a_currency_ib_does_not_report_totals_in_is_refused_naming_the_one_it_does(broker: IBBroker) -> None:
    in_euros = IBBroker(broker._ib, ACCOUNT, currency="EUR", loop=broker.loop)

    with pytest.raises(BrokerDataError, match=r"has no TotalCashValue in EUR \(given in USD"):
        account_of(in_euros)


def test_a_sec_type_the_adapter_does_not_know_is_compared_by_local_symbol_as_other(
    tws: FakeTws, broker: IBBroker, caplog: pytest.LogCaptureFixture
) -> None:
    bond = [
        "61",
        "3",
        ACCOUNT,
        "9999",
        "T",
        "BOND",
        "",
        "0",
        "",
        "",
        "",
        "USD",
        "T 4 1/4 11/15/34",
        "",
        "10",
        "99.5",
    ]
    tws.positions.insert(0, bond)

    with caplog.at_level(logging.WARNING, logger="reconciliation.adapters.ib"):
        held, again = positions_of(broker), positions_of(broker)

    bond = held["T 4 1/4 11/15/34"]
    assert (bond.asset_type, bond.quantity, bond.avg_cost) == (AssetType.OTHER, Decimal(10), Decimal("99.5"))
    assert held == again
    assert sum("has secType 'BOND'" in r.getMessage() for r in caplog.records) == 1


def test_a_position_without_a_portfolio_value_reports_its_cost_value(tws: FakeTws, broker: IBBroker) -> None:
    tws.positions.insert(
        0,
        [
            "61",
            "3",
            ACCOUNT,
            "4815747",
            "NVDA",
            "STK",
            "",
            "0",
            "",
            "",
            "NASDAQ",
            "USD",
            "NVDA",
            "NMS",
            "10",
            "135.5",
        ],
    )

    assert positions_of(broker)["NVDA"].market_value == Decimal(1355)


def test_a_call_for_another_account_is_refused(broker: Any) -> None:
    with pytest.raises(BrokerDataError, match="reads account 'DU7654321', not 'U1234567'"):
        asyncio.run(broker.get_positions("U1234567"))


READ_REQUESTS = {
    "71": "startApi",
    "61": "reqPositions",
    "62": "reqAccountSummary",
    "6": "reqAccountUpdates",
    "5": "reqOpenOrders",
    "7": "reqExecutions",
    "99": "reqCompletedOrders",
    "76": "reqAccountUpdatesMulti",
}
"""The TWS API requests (outgoing message ids) a connection and a full read send: none places,
changes or cancels an order (3, 4, 58) or exercises an option (21)."""


class TestAnswersRecordedFromTws:
    """A three-currency, AUD-based paper account as NautilusTrader recorded its account values
    (tests/fixtures/brokers/ib/account_values.json), served as TWS account-summary messages.
    No recorded IB positions were found: the account holds none here."""

    RECORDED_ACCOUNT = "DU123456"

    @pytest.fixture
    def recorded_tws(self) -> Iterator[FakeTws]:
        rows = json.loads((FIXTURES / "ib" / "account_values.json").read_text())
        server = FakeTws(
            {
                "account": self.RECORDED_ACCOUNT,
                "position_msgs": [["62", "1"]],
                "portfolio_msgs": [],
                "account_summary_msgs": [
                    ["63", "1", "9001", row["account"], row["tag"], row["value"], row["currency"]]
                    for row in rows
                    if row["currency"] or row["tag"] == "AccountType"
                ]
                + [["64", "1", "9001"]],
            }
        )
        server.start()
        yield server
        server.stop()

    @pytest.fixture
    def recorded_broker(self, recorded_tws: FakeTws) -> Iterator[IBBroker]:
        thread = IBThread("127.0.0.1", recorded_tws.port, client_id=7, account=self.RECORDED_ACCOUNT, timeout=5)
        thread.start()
        yield IBBroker(thread.ib, self.RECORDED_ACCOUNT, currency="AUD", loop=thread.loop)
        thread.stop()

    def recorded_book(self, **cash: str) -> Book:
        return Book(
            self.RECORDED_ACCOUNT,
            [],
            cash="51463.78",
            total_equity="1000000.24",
            cash_by_currency={"AUD": "-100000.79", "EUR": "429.72", "USD": "100000.27", **cash},
        )

    def test_a_correct_book_is_clean(self, recorded_broker: IBBroker) -> None:
        result = reconcile_once(self.recorded_book(), recorded_broker, cash_tolerance="1.00")

        assert (result.error, result.discrepancies) == (None, ())

    def test_the_cash_of_each_currency_is_compared_in_it(self, recorded_broker: IBBroker) -> None:
        result = reconcile_once(self.recorded_book(EUR="431.72"), recorded_broker, cash_tolerance="1.00")

        assert [(d.type, d.currency, d.local_value, d.broker_value) for d in result.discrepancies] == [
            (CASH, "EUR", Decimal("431.72"), Decimal("429.72"))
        ]

    def test_an_aud_account_with_the_default_usd_tolerance_is_refused_at_start(self, recorded_broker: IBBroker) -> None:
        with pytest.raises(ValueError, match=r"reconciled in AUD .* cash_tolerance_by_currency\.AUD"):
            Account(ReconciliationConfig(self.RECORDED_ACCOUNT), self.recorded_book(), recorded_broker)

    def test_a_full_read_sends_only_read_requests(self, recorded_tws: FakeTws, recorded_broker: IBBroker) -> None:
        asyncio.run(recorded_broker.get_positions(self.RECORDED_ACCOUNT))
        asyncio.run(recorded_broker.get_account(self.RECORDED_ACCOUNT))

        sent = {fields[0] for fields in recorded_tws.requests}
        assert sent <= READ_REQUESTS.keys(), sent - READ_REQUESTS.keys()
        assert {"61", "62"} <= sent
