"""A reconciliation service over fixed books, for the pipeline benchmarks."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from books import ACCOUNT

from reconciliation import ReconciliationConfig, ReconciliationService
from reconciliation._domain.models import LocalAccount
from reconciliation.testing import ScriptedBroker

if TYPE_CHECKING:
    import redis

    from reconciliation._domain.models import BrokerPosition, Position
    from reconciliation._domain.protocols import BrokerQuery, PortfolioManager

__all__ = ["CASH", "FixedBook", "quiet_logging", "start_service", "stop_service"]

CASH = Decimal("1000000.00")


class FixedBook:
    """A `PortfolioManager` that answers the same positions every time."""

    def __init__(self, positions: list[Position]) -> None:
        self.positions = positions

    def get_positions(self, account_id: str) -> list[Position]:  # noqa: ARG002 - one account
        return self.positions

    def get_account(self, account_id: str) -> LocalAccount:
        return LocalAccount(account_id, CASH, CASH)


def quiet_logging() -> None:
    """Discrepancies are logged at WARNING; keep them off the benchmark's output."""
    logging.getLogger("reconciliation").addHandler(logging.NullHandler())
    logging.getLogger("reconciliation").propagate = False


def start_service(
    local: list[Position],
    broker: list[BrokerPosition],
    client: redis.Redis,
    *,
    broker_query: BrokerQuery | None = None,
    portfolio: PortfolioManager | None = None,
    account_id: str = ACCOUNT,
    **config: object,
) -> ReconciliationService:
    """A started service of `account_id` over `portfolio`, or a book answering `local`,
    asking `broker_query`, or a broker answering `broker`.

    The services a figure runs side by side each need an account of their own: a second
    service of an account is standby for it (its lease is held by the first)."""
    settings: dict[str, object] = {"enabled": False, "interval_seconds": 3600}
    settings.update(config)
    service = ReconciliationService(
        portfolio or FixedBook(local),
        broker_query or ScriptedBroker(account_id, broker, cash=CASH, total_equity=CASH),
        client,
        ReconciliationConfig(account_id=account_id, **settings),  # type: ignore[arg-type]
    )
    asyncio.run(service.start())
    return service


def stop_service(service: ReconciliationService) -> None:
    asyncio.run(service.stop())
