"""Recorded venue payloads, and one reconciliation of a local book against an adapter through the real service."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fakeredis

from reconciliation import (
    BrokerQuery,
    DiscrepancyType,
    Fill,
    LocalAccount,
    Position,
    ReconciliationConfig,
    ReconciliationResult,
    ReconciliationService,
)

if TYPE_CHECKING:
    from reconciliation._runtime.clock import Clock

FIXTURES = Path(__file__).parent / "fixtures" / "brokers"


def recorded(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded payload file (tests/fixtures/brokers), for a test to change as it likes."""
    payloads: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payloads


class Book:
    """The engine's side: a `PortfolioManager` holding exactly what a test gives it (`booking`
    makes it say its fills too)."""

    def __init__(
        self,
        account_id: str,
        positions: Iterable[Position],
        *,
        cash: Decimal | str,
        total_equity: Decimal | str,
        cash_by_currency: Mapping[str, Decimal | str] | None = None,
    ) -> None:
        self.account_id = account_id
        self.positions = list(positions)
        self.account = LocalAccount(account_id, cash, total_equity, cash_by_currency=cash_by_currency)
        self.fills: list[Fill] = []

    def get_positions(self, account_id: str) -> list[Position]:
        assert account_id == self.account_id
        return list(self.positions)

    def get_account(self, account_id: str) -> LocalAccount:
        assert account_id == self.account_id
        return self.account

    def booking(self, *fills: Fill) -> FillBook:
        """This book as one that also says which fills it booked: `fills` (none: it booked none)."""
        book = FillBook(self.account_id, self.positions, cash=self.account.cash, total_equity=self.account.total_equity)
        book.account = self.account
        book.fills = [*self.fills, *fills]
        return book

    def without(self, symbol: str) -> Book:
        """This book with `symbol` left out."""
        return self.replacing(symbol)

    def replacing(self, symbol: str, *replacements: Position) -> Book:
        """This book with `symbol`'s position replaced by `replacements` (none: left out)."""
        book = type(self)(self.account_id, [], cash=self.account.cash, total_equity=self.account.total_equity)
        book.account = self.account
        book.fills = list(self.fills)
        book.positions = [p for p in self.positions if p.symbol != symbol] + list(replacements)
        return book

    def adding(self, *positions: Position) -> Book:
        return self.replacing("", *positions)


class FillBook(Book):
    """A `Book` that is also a `FillHistory`: it says the fills it booked."""

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        assert account_id == self.account_id
        return [fill for fill in self.fills if fill.symbol == symbol and fill.timestamp >= since]


def reconcile_once(book: Book, broker: BrokerQuery, *, clock: Clock | None = None, **config: Any) -> ReconciliationResult:
    """One on-demand run of a service over `book` and `broker`, started and stopped around it (at
    `clock`'s time: a `ManualClock` runs it when recorded fills were fresh)."""
    settings = ReconciliationConfig(book.account_id, enabled=False, **config)
    service = ReconciliationService(book, broker, fakeredis.FakeRedis(), settings, clock=clock)

    async def session() -> ReconciliationResult:
        await service.start()
        try:
            return await service.reconcile()
        finally:
            await service.stop()

    return asyncio.run(session())


def found(result: ReconciliationResult) -> list[tuple[DiscrepancyType, str | None, str | None, str | None]]:
    """Each discrepancy as (type, symbol, local value, broker value), values as plain text."""
    assert result.error is None, result.error
    return [
        (
            d.type,
            d.symbol,
            None if d.local_value is None else format(d.local_value, "f"),
            None if d.broker_value is None else format(d.broker_value, "f"),
        )
        for d in result.discrepancies
    ]
