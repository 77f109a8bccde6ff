"""AlpacaBroker.get_fills: the account's FILL activities through alpaca-py's own client, on the
activity alpaca-py's tests recorded (tests/fixtures/brokers/alpaca/), and the explanation it gives
a position break end to end through the service."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("alpaca")

from adapter_fixtures import FIXTURES, Book, FillBook, reconcile_once
from recorded_alpaca import RecordedAlpaca, alpaca_client

from reconciliation import AssetType, ExplanationPolicy, Fill, Position
from reconciliation.adapters import BrokerDataError, InconsistentVenueDataError
from reconciliation.adapters.alpaca import AlpacaBroker, fill_asset_type
from reconciliation.testing import ManualClock, capture_published

ACCOUNT = "010203ABCD"
"""The account number of alpaca-py's recorded account."""
FILLED_AT = dt.datetime(2022, 3, 4, 14, 53, 18, 500_245, tzinfo=dt.UTC)
"""When alpaca-py's recorded FILL (a buy of 9 GOOGL at 2630.95) was made."""
SINCE = FILLED_AT - dt.timedelta(hours=1)
FILL_ID = "20220304095318500::092cd749-b783-49cb-a36e-4d8666be201f"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / "alpaca" / name).read_text())


def activities() -> list[dict[str, Any]]:
    return recorded("v2_account_activities_FILL.json")  # type: ignore[no-any-return]


def broker_answering(fills: Any, **options: Any) -> tuple[AlpacaBroker, RecordedAlpaca]:
    """The recorded account, its positions with a GOOGL holding of 10 (hand-made: README.md), its
    FILL activities answered by `fills` (a list, or a function of the request's query)."""
    client, transport = alpaca_client(
        {
            "positions": recorded("v2_positions.json") + recorded("handmade_v2_positions_googl.json"),
            "account": recorded("v2_account.json"),
        }
    )
    transport.answers["/account/activities/FILL"] = fills
    return AlpacaBroker(client, ACCOUNT, **options), transport


def fills_of(broker: AlpacaBroker, symbol: str = "GOOGL") -> list[Fill]:
    return asyncio.run(broker.get_fills(ACCOUNT, symbol, SINCE))


def engine(googl: str) -> FillBook:
    return Book(
        ACCOUNT,
        [Position("AAPL", "5", "100.0"), Position("GOOGL", googl, "2630.95")],
        cash="-23140.2",
        total_equity="103820.56",
    ).booking()


def test_a_fill_the_engine_missed_is_published_explained_with_alpacas_activity() -> None:
    broker, _ = broker_answering(activities())

    with capture_published() as capture:
        result = reconcile_once(engine("1"), broker, clock=ManualClock(start=FILLED_AT + dt.timedelta(minutes=10)))

    assert result.error is None
    (found,) = [d for d in capture.discrepancies if d["symbol"] == "GOOGL"]
    assert (found["type"], found["local_value"], found["broker_value"]) == ("quantity_mismatch", "1", "10")
    assert found["explanation"]["verdict"] == "explained"
    assert found["explanation"]["summary"] == f"explained: broker fill {FILL_ID} BUY 9 @ 2630.95 14:53:18 not booked"


def test_an_activity_is_a_fill_signed_by_its_side_with_its_ids_and_time_in_utc() -> None:
    broker, _ = broker_answering(activities())

    assert fills_of(broker) == [
        Fill(FILL_ID, "b677e464-c2d0-4fdd-a4b1-8830b386aa50", "GOOGL", "9", "2630.95", FILLED_AT, AssetType.STOCK)
    ]


def test_a_sell_is_negative() -> None:
    sold = activities()
    sold[0]["side"] = "sell"
    broker, _ = broker_answering(sold)

    assert fills_of(broker)[0].quantity == Decimal(-9)


def test_alpaca_reports_no_fee_with_a_fill() -> None:
    broker, _ = broker_answering(activities())

    assert fills_of(broker)[0].fee == 0


def test_the_activities_of_other_symbols_are_left_out() -> None:
    broker, _ = broker_answering(activities())

    assert fills_of(broker, "AAPL") == []


def test_the_request_reads_fill_activities_oldest_first_from_since() -> None:
    broker, transport = broker_answering(activities())

    fills_of(broker)

    ((method, path, _),) = transport.requests
    assert (method, path) == ("GET", "/v2/account/activities/FILL")


def test_pages_follow_the_last_activitys_id_and_stop_at_max_activities() -> None:
    queries: list[dict[str, str]] = []

    def a_page_of_a_hundred(query: dict[str, str]) -> list[dict[str, Any]]:
        queries.append(query)
        first = 100 * (len(queries) - 1)
        template = activities()[0]
        return [{**template, "id": f"A-{n}", "order_id": f"O-{n}"} for n in range(first, first + 100)]

    broker, _ = broker_answering(a_page_of_a_hundred, max_activities=250)

    fills = fills_of(broker)

    assert [fill.fill_id for fill in fills] == [f"A-{n}" for n in range(250)]
    assert [(q.get("page_token"), q["page_size"]) for q in queries] == [(None, "100"), ("A-99", "100"), ("A-199", "50")]
    assert {(q["after"], q["direction"]) for q in queries} == {(SINCE.isoformat(), "asc")}


def test_an_activity_listed_twice_is_one_fill() -> None:
    broker, _ = broker_answering(activities() * 2)

    assert [fill.fill_id for fill in fills_of(broker)] == [FILL_ID]


def test_one_activity_id_with_two_quantities_is_refused_as_inconsistent() -> None:
    other = copy.deepcopy(activities())
    other[0]["qty"] = "8"
    broker, _ = broker_answering(activities() + other)

    with pytest.raises(InconsistentVenueDataError, match=f"execution {FILL_ID} is given twice"):
        fills_of(broker)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("qty", "NaN", "qty is 'NaN', not a finite number"),
        ("price", "", "price is missing"),
        ("side", "short", "'short' is not a valid OrderSide"),
        ("transaction_time", "yesterday", "Invalid isoformat string"),
        ("transaction_time", "2022-03-04T14:53:18", "without its time zone"),
        ("order_id", None, "has no order id"),
    ],
)
def test_a_bad_activity_is_refused_naming_it(field: str, value: Any, says: str) -> None:
    bad = activities()
    bad[0][field] = value
    broker, _ = broker_answering(bad)

    with pytest.raises(BrokerDataError, match=f"Alpaca fills of GOOGL: activity '{FILL_ID}'.*{says}"):
        fills_of(broker)


def test_a_server_error_leaves_the_break_published_unexplained_saying_why() -> None:
    broker, _ = broker_answering((500, {"code": 50010000, "message": "internal server error"}))

    with capture_published() as capture:
        reconcile_once(engine("1"), broker, clock=ManualClock(start=FILLED_AT + dt.timedelta(minutes=10)))

    (found,) = [d for d in capture.discrepancies if d["symbol"] == "GOOGL"]
    assert found["explanation"]["verdict"] == "unexplained"
    assert "internal server error" in found["explanation"]["note"]


def test_an_activity_endpoint_that_hangs_does_not_delay_the_break() -> None:
    released = False

    def hanging(_query: dict[str, str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while not released and time.monotonic() < deadline:
            time.sleep(0.01)
        return activities()

    broker, _ = broker_answering(hanging)
    policy = ExplanationPolicy(timeout_seconds=0.3, lookback_seconds=10 * 365 * 86_400)
    try:
        with capture_published() as capture:
            started = time.monotonic()
            reconcile_once(engine("1"), broker, explanations=policy)
            took = time.monotonic() - started
    finally:
        released = True

    (found,) = [d for d in capture.discrepancies if d["symbol"] == "GOOGL"]
    assert found["explanation"]["verdict"] == "unexplained"
    assert "did not answer within" in found["explanation"]["note"]
    assert took < 5


def test_a_full_fills_read_sends_only_gets() -> None:
    broker, transport = broker_answering(activities())

    fills_of(broker)
    fills_of(broker, "BTC/USD")

    assert {method for method, _, _ in transport.requests} == {"GET"}


@pytest.mark.parametrize(
    ("symbol", "asset_type"),
    [("GOOGL", AssetType.STOCK), ("BRK.B", AssetType.STOCK), ("BTC/USD", AssetType.CRYPTO), ("AAPL260116C00190000", AssetType.OPTION)],
)
def test_a_fills_asset_type_is_the_one_its_position_has(symbol: str, asset_type: AssetType) -> None:
    assert fill_asset_type(symbol) is asset_type


def test_a_crypto_activity_under_alpacas_position_symbol_is_the_pairs_fill() -> None:
    crypto = activities()
    crypto[0].update(symbol="BTCUSD", qty="0.0421", price="97000.5")
    broker, _ = broker_answering(crypto)

    (fill,) = fills_of(broker, "BTC/USD")

    assert (fill.symbol, fill.asset_type, fill.quantity) == ("BTC/USD", AssetType.CRYPTO, Decimal("0.0421"))
