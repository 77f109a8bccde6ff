"""What the service reads: the broker's view and the local book's view of an account.

Implementations may define their methods as plain functions or as coroutines; the
snapshot fetcher calls either kind the same way. `get_positions` may answer with a list
of positions or, for a large book, a columnar batch (`ArrowBatch`: a pyarrow Table, a
polars DataFrame) with the columns of docs/configuration.md, which needs the `fast` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Awaitable, Collection, Sequence

    from reconciliation._domain.compare import Comparison
    from reconciliation._domain.correction import Correction
    from reconciliation._domain.fills import Fill
    from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position

__all__ = ["ArrowBatch", "BrokerQuery", "ColumnarPositions", "CorrectableBook", "FillHistory", "PortfolioManager"]


class ArrowBatch(Protocol):
    """Columns that export an Arrow stream (the Arrow PyCapsule interface): a pyarrow Table
    or RecordBatch, a polars DataFrame, and the like."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


@runtime_checkable
class BrokerQuery(Protocol):
    """Read-only access to what the broker reports for an account.

    .. versionadded:: 0.1
    """

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
    """Read-only access to what the trading engine believes it holds.

    .. versionadded:: 0.1
    """

    def get_positions(
        self, account_id: str
    ) -> Sequence[Position] | ArrowBatch | Awaitable[Sequence[Position] | ArrowBatch]:
        """Every position the engine holds, as objects or as columns."""

    def get_account(self, account_id: str) -> LocalAccount | Awaitable[LocalAccount]: ...


@runtime_checkable
class CorrectableBook(Protocol):
    """A local book the service may correct (`CorrectionPolicy(mode="apply")`).

    The service calls nothing else to change the book, and calls this only with a
    correction that enough runs have confirmed and that is within the policy's limits;
    what applying means (a booking, a journal entry, a synthetic fill) is the host's
    to decide. The method may be plain or `async`; it is called off the engine's
    threads, bounded by `broker_timeout_seconds`, and whatever it raises is reported
    and leaves the break open.

    A book should refuse (raise) a correction whose `local_value` is no longer what it
    holds: it moved since the run that computed the correction, and the next run will
    compute a fresh one.

    .. versionadded:: 0.1
    """

    def apply_correction(self, correction: Correction) -> object | Awaitable[object]: ...


@runtime_checkable
class FillHistory(Protocol):
    """A book that can say which fills it holds: either side may implement it, and when both
    do, every position break is published with the fills behind it (`ExplanationPolicy`).

    The method may be plain or `async`; it is called off the engine's threads, once per
    position break, bounded by `ExplanationPolicy.timeout_seconds`, and whatever it raises
    leaves the break unexplained, never unpublished. The engine's fills should carry the
    venue's execution id (`venue_fill_id`) when it has it: fills are matched by it first.

    .. versionadded:: 0.1
    """

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> Sequence[Fill] | Awaitable[Sequence[Fill]]:
        """The executions in `symbol` at or after `since`, oldest first."""
        ...


@runtime_checkable
class ColumnarPositions(Protocol):
    """One side's positions held as validated columns (the columnar wing's `PositionColumns`,
    the `fast` extra). The domain never reads the columns: it asks them these two things."""

    def __len__(self) -> int: ...

    def compare_sides(
        self,
        local: Sequence[Position] | ColumnarPositions,
        broker: Sequence[BrokerPosition] | ColumnarPositions,
        **options: Any,
    ) -> Comparison:
        """Compare both sides (this one among them), exactly as `compare_positions` would given
        the same keyword `options` (`account_id`, `timestamp`, `config`, `pause`)."""
        ...

    def entries_of(self, symbols: Collection[str]) -> Sequence[Position] | Sequence[BrokerPosition]:
        """The entries whose symbol is one of `symbols`, as objects."""
        ...
