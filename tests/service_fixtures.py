"""Fixtures for driving a whole ReconciliationService from synchronous tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fakeredis
import pytest

from reconciliation import InMemoryPortfolio, OrderFill, ReconciliationConfig, ReconciliationResult
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.service import ReconciliationService
from reconciliation.testing import AsyncScriptedBroker, RedisCapture, ScriptedBroker

ACCOUNT = "ACC-1"


def make_fill(n: int, symbol: str = "AAPL", quantity: int = 10) -> OrderFill:
    return OrderFill(
        f"ORD-{n}",
        f"FILL-{n}",
        ACCOUNT,
        symbol,
        quantity,
        Decimal(100),
        dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    )


class Harness:
    """A service over a scripted broker and an in-memory book, publishing to fakeredis."""

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        asynchronous: bool = False,
        on_halt: Any = None,
        **config: Any,
    ) -> None:
        self.redis = fakeredis.FakeRedis()
        self.capture = RedisCapture(self.redis)
        self.broker = (AsyncScriptedBroker if asynchronous else ScriptedBroker)(ACCOUNT, cash=Decimal(1000))
        self.book = InMemoryPortfolio(ACCOUNT, cash=Decimal(1000))
        self.clock = clock
        self.config = ReconciliationConfig(ACCOUNT, **config)
        self.service = ReconciliationService(
            self.book, self.broker, self.redis, self.config, clock=clock, on_halt=on_halt
        )

    def start(self) -> ReconciliationResult | None:
        return asyncio.run(self.service.start())

    def reconcile(self, requested_by: str = "api") -> ReconciliationResult:
        return asyncio.run(self.service.reconcile(requested_by=requested_by))

    def stop(self) -> None:
        asyncio.run(self.service.stop())

    def triggers(self) -> list[str]:
        return [r["context"]["trigger"] for r in self.capture.results]

    def close(self) -> None:
        self.stop()
        self.capture.close()


@pytest.fixture
def harness_factory() -> Iterator[Any]:
    made: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        harness = Harness(**kwargs)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
