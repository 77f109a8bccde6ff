"""An audit store with breaks in it, recorded by real services: what the board starts from."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import fakeredis

from reconciliation import BrokerPosition, InMemoryPortfolio, ReconciliationConfig, ReconciliationService
from reconciliation.testing import ScriptedBroker

__all__ = ["seed_store"]


def seed_store(target: str) -> None:
    """Two runs each of two accounts, recorded in the store at `target`.

    ACC-1: the broker holds 150 AAPL the book does not know (missing_local, critical)
    and 50.00 less cash (cash_mismatch, warning). ACC-2: the broker holds 10 MSFT the
    book does not know (critical). Both seen in 2 runs in a row.
    """

    async def session(account_id: str, broker: ScriptedBroker) -> None:
        service = ReconciliationService(
            InMemoryPortfolio(account_id, cash=Decimal(1000)),
            broker,
            fakeredis.FakeRedis(),
            ReconciliationConfig(account_id, audit_store=target, equity_tolerance_pct=Decimal(100)),
        )
        await service.start()
        await service.reconcile(requested_by="seed")
        await service.stop()

    asyncio.run(
        session(
            "ACC-1",
            ScriptedBroker(
                "ACC-1",
                [BrokerPosition("AAPL", 150, Decimal("189.50"), Decimal("28425.00"))],
                cash=Decimal("950.00"),
            ),
        )
    )
    asyncio.run(
        session(
            "ACC-2",
            ScriptedBroker(
                "ACC-2", [BrokerPosition("MSFT", 10, Decimal("410.25"), Decimal("4102.50"))], cash=Decimal(1000)
            ),
        )
    )
