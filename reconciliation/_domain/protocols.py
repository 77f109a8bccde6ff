"""What the service reads: the broker's view and the local book's view of an account.

Implementations may define their methods as plain functions or as coroutines; the
snapshot fetcher calls either kind the same way. `get_positions` may answer with a list
of positions or, for a large book, a columnar batch (`ArrowBatch`: a pyarrow Table, a
polars DataFrame) with the columns of docs/configuration.md, which needs the `fast` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position

__all__ = ["ArrowBatch", "BrokerQuery", "PortfolioManager"]


class ArrowBatch(Protocol):
    """Columns that export an Arrow stream (the Arrow PyCapsule interface): a pyarrow Table
    or RecordBatch, a polars DataFrame, and the like."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


@runtime_checkable
class BrokerQuery(Protocol):
    """Read-only access to what the broker reports for an account."""

    def get_positions(
        self, account_id: str
    ) -> Sequence[BrokerPosition] | ArrowBatch | Awaitable[Sequence[BrokerPosition] | ArrowBatch]:
        """Every open position, as objects or as columns; brokers usually omit flat ones."""
        ...

    def get_account(self, account_id: str) -> BrokerAccount | Awaitable[BrokerAccount]:
        """Cash, buying power, net liquidation value and margin in use."""
        ...


@runtime_checkable
class PortfolioManager(Protocol):
    """Read-only access to what the trading engine believes it holds."""

    def get_positions(
        self, account_id: str
    ) -> Sequence[Position] | ArrowBatch | Awaitable[Sequence[Position] | ArrowBatch]:
        """Every position the engine holds, as objects or as columns."""

    def get_account(self, account_id: str) -> LocalAccount | Awaitable[LocalAccount]: ...
