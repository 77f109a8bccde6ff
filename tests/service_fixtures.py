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
from reconciliation.testing import AsyncScriptedBroker, ScriptedBroker, capture_published, settle

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
    """A service over a scripted broker and an in-memory book, publishing to fakeredis;
    what it publishes is captured in-process (`capture`), so tests wait on it without sleeping."""

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        asynchronous: bool = False,
        on_halt: Any = None,
        redis_server: fakeredis.FakeServer | None = None,
        account_id: str = ACCOUNT,
        **config: Any,
    ) -> None:
        """`redis_server` is the fake Redis to publish to (a test may disconnect it); a new one by default."""
        self.redis = fakeredis.FakeRedis(server=redis_server)
        self._capturing = capture_published()
        self.capture = self._capturing.__enter__()
        self.broker = (AsyncScriptedBroker if asynchronous else ScriptedBroker)(account_id, cash=Decimal(1000))
        self.book = InMemoryPortfolio(account_id, cash=Decimal(1000))
        self.clock = clock
        self.config = ReconciliationConfig(account_id, **config)
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
        return self.capture.triggers()

    def settle(self) -> None:
        """Every trigger fired so far has given its run (see `reconciliation.testing.settle`)."""
        settle(self.service)

    def close(self) -> None:
        self.stop()
        self._capturing.__exit__(None, None, None)


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
