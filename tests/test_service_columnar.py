"""A running service reconciles books that answer with columns, as it does books of objects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fakeredis
import pytest

pa = pytest.importorskip("pyarrow")

from reconciliation import (  # noqa: E402 - after the extra's check
    BrokerAccount,
    DiscrepancyType,
    LocalAccount,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation.testing import PublishedCapture, capture_published  # noqa: E402

ACCOUNT = "ACC-1"


def positions(quantities: list[str], *, market_values: bool = False) -> Any:
    """AAPL, MSFT, ... with these quantities (decimal text), each at cost 100.00."""
    count = len(quantities)
    columns = {
        "symbol": pa.array(["AAPL", "MSFT", "TSLA", "ES"][:count]),
        "quantity": pa.array(quantities),
        "avg_cost": pa.array([Decimal("100.00")] * count, pa.decimal128(12, 2)),
    }
    if market_values:
        columns["market_value"] = pa.array([Decimal(0)] * count, pa.decimal128(12, 2))
    return pa.table(columns)


class ColumnarBook:
    """A local book that keeps its positions as an Arrow table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get_positions(self, account_id: str) -> Any:
        return self.table

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, Decimal(1000), Decimal(1000))


class ColumnarBroker:
    """A broker whose async client answers with an Arrow table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    async def get_positions(self, account_id: str) -> Any:
        return self.table

    async def get_account(self, account_id: str) -> BrokerAccount:
        return BrokerAccount(account_id, Decimal(1000), Decimal(0), Decimal(1000), Decimal(0))


@pytest.fixture
def capture() -> Iterator[PublishedCapture]:
    with capture_published() as captured:
        yield captured


def reconcile(book: ColumnarBook, broker: Any) -> Any:
    service = ReconciliationService(
        book, broker, fakeredis.FakeRedis(), ReconciliationConfig(ACCOUNT, enabled=False)
    )

    async def once() -> Any:
        await service.start()
        try:
            return await service.reconcile()
        finally:
            await service.stop()

    return asyncio.run(once())


def test_books_answering_with_columns_that_agree_give_a_clean_run(capture: PublishedCapture) -> None:
    result = reconcile(
        ColumnarBook(positions(["10", "-5"])), ColumnarBroker(positions(["10", "-5"], market_values=True))
    )

    assert result.is_clean
    assert result.positions_checked == 2
    assert capture.results[-1]["status"] == "ok"


def test_a_break_between_columnar_books_is_published_with_its_exact_values(capture: PublishedCapture) -> None:
    result = reconcile(ColumnarBook(positions(["10", "-5"])), ColumnarBroker(positions(["10.5", "-5", "3"])))

    assert [(d.type, d.symbol) for d in result.discrepancies] == [
        (DiscrepancyType.QUANTITY_MISMATCH, "AAPL"),
        (DiscrepancyType.MISSING_LOCAL, "TSLA"),
    ]
    assert [(d["symbol"], d["local_value"], d["broker_value"]) for d in capture.discrepancies] == [
        ("AAPL", "10", "10.5"),
        ("TSLA", None, "3"),
    ]


def test_a_polars_broker_is_reconciled_against_a_book_of_objects(capture: PublishedCapture) -> None:
    pl = pytest.importorskip("polars")
    from reconciliation import InMemoryPortfolio  # noqa: PLC0415

    frame = pl.from_arrow(positions(["10"]))

    result = reconcile(InMemoryPortfolio(ACCOUNT, cash=Decimal(1000)), ColumnarBroker(frame))

    assert [(d.type, d.symbol) for d in result.discrepancies] == [(DiscrepancyType.MISSING_LOCAL, "AAPL")]


def test_a_malformed_batch_fails_the_run_naming_its_row_and_column(capture: PublishedCapture) -> None:
    result = reconcile(ColumnarBook(positions(["10", "-5"])), ColumnarBroker(positions(["10", "five"])))

    assert result.status == "failed"
    assert result.error is not None
    assert (
        "broker.get_positions row 1 (symbol 'MSFT'), column 'quantity': 'five' is not a plain decimal number"
        in (result.error)
    )
    assert capture.results[-1]["status"] == "failed"
    assert capture.discrepancies == []
