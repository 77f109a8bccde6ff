"""What the service reads: the broker's view and the local book's view of an account.

Implementations may define their methods as plain functions or as coroutines; the
snapshot fetcher calls either kind the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position

__all__ = ["BrokerQuery", "PortfolioManager"]


@runtime_checkable
class BrokerQuery(Protocol):
    """Read-only access to what the broker reports for an account."""

    def get_positions(
        self, account_id: str
    ) -> Sequence[BrokerPosition] | Awaitable[Sequence[BrokerPosition]]:
        """Every open position; brokers usually omit flat ones."""
        ...

    def get_account(self, account_id: str) -> BrokerAccount | Awaitable[BrokerAccount]:
        """Cash, buying power, net liquidation value and margin in use."""
        ...


@runtime_checkable
class PortfolioManager(Protocol):
    """Read-only access to what the trading engine believes it holds."""

    def get_positions(self, account_id: str) -> Sequence[Position] | Awaitable[Sequence[Position]]: ...

    def get_account(self, account_id: str) -> LocalAccount | Awaitable[LocalAccount]: ...
