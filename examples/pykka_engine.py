"""A host engine written as pykka actors, embedding the reconciliation service.

The execution actor books each fill and *tells* it to the service; the risk actor
*asks* the service for a run before it raises a limit. Run it: `python examples/pykka_engine.py`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import fakeredis
import pykka

from reconciliation import (
    InMemoryPortfolio,
    OrderFill,
    PaperBroker,
    ReconcileRequest,
    ReconciliationConfig,
    ReconciliationResult,
    ReconciliationService,
)

ACCOUNT = "ACC-1"


class ExecutionActor(pykka.ThreadingActor):
    """Books fills into the engine's portfolio, then tells the reconciliation service."""

    def __init__(self, portfolio: InMemoryPortfolio, reconciliation: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.portfolio = portfolio
        self.reconciliation = reconciliation

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, OrderFill):
            self.portfolio.apply_fill(message)
            self.reconciliation.tell(message)
        return None


class RiskActor(pykka.ThreadingActor):
    """Before raising a limit, asks for a fresh reconciliation and trusts only a clean one."""

    def __init__(self, reconciliation: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.reconciliation = reconciliation

    def on_receive(self, message: Any) -> Any:
        if message == "may_raise_limit":
            result: ReconciliationResult = self.reconciliation.ask(
                ReconcileRequest(ACCOUNT, requested_by="risk"), timeout=10
            )
            return result
        return None


def fill(number: int, symbol: str, quantity: int, price: str) -> OrderFill:
    return OrderFill(
        order_id=f"ORD-{number}",
        fill_id=f"FILL-{number}",
        account_id=ACCOUNT,
        symbol=symbol,
        quantity=quantity,
        price=Decimal(price),
        timestamp=dt.datetime.now(dt.UTC),
    )


async def main() -> tuple[ReconciliationResult, ReconciliationResult]:
    """Returns the risk actor's answers: before and after a fill the engine never saw."""
    broker = PaperBroker(ACCOUNT, cash=Decimal(100000))
    portfolio = InMemoryPortfolio(ACCOUNT, cash=Decimal(100000))
    config = ReconciliationConfig(ACCOUNT, interval_seconds=60, post_fill_delay_seconds=0.2)
    service = ReconciliationService(portfolio, broker, fakeredis.FakeRedis(), config)
    await service.start()
    execution = ExecutionActor.start(portfolio, service.ref)
    risk = RiskActor.start(service.ref)
    try:
        for number, (symbol, quantity, price) in enumerate([("AAPL", 100, "189.10"), ("MSFT", 50, "411.00")]):
            booked = fill(number, symbol, quantity, price)
            broker.apply_fill(booked)
            execution.tell(booked)
        clean = risk.ask("may_raise_limit")
        broker.apply_fill(fill(99, "AAPL", 25, "189.20"))
        broken = risk.ask("may_raise_limit")
        return clean, broken
    finally:
        execution.stop()
        risk.stop()
        await service.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
    before, after = asyncio.run(main())
    print(f"before: clean={before.is_clean}; after: {[d.type.value for d in after.discrepancies]}")
