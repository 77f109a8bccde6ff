"""One side's positions as validated columns, for books too large for one object per position.

A `PositionColumns` is what a columnar answer (an Arrow table, a polars DataFrame, a
position statement read from CSV or Parquet) becomes once it has been checked as
strictly as `Position` objects are: the symbols as an Arrow string array, the asset
types as small integer codes, and each decimal column as exact scaled integers
(`DecimalColumn`). Nothing in it is a binary float.

This module only defines the shapes and needs neither pyarrow nor numpy at import time;
building one (`input`) and comparing two (`compare`) need the `fast` extra. The domain
knows a `PositionColumns` only as `ColumnarPositions`: what it asks of one is here.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs

from reconciliation._domain.models import AssetType, BrokerPosition, Position

if TYPE_CHECKING:
    from collections.abc import Collection

    import numpy as np  # noqa: TC004 - attrs does not evaluate annotations; numpy is the optional extra's
    import numpy.typing as npt  # noqa: TC004

    from reconciliation._domain.compare import Comparison
    from reconciliation._domain.protocols import ColumnarPositions

__all__ = [
    "ASSET_TYPE_ORDER",
    "FAST_EXTRA",
    "PLAIN_DECIMAL",
    "ColumnsError",
    "DecimalColumn",
    "Picks",
    "PositionColumns",
    "fast_available",
    "is_columnar_batch",
    "parse_columns",
]

FAST_EXTRA = "pip install 'reconciliation[fast]'"
"""How to install what the columnar path needs (pyarrow and numpy)."""

PLAIN_DECIMAL = r"[+-]?(\d+\.?\d*|\.\d+)"
"""The decimal text a column may hold: digits with an optional sign and decimal point
(`-12.50`, `.5`, `+3`); no exponent, no separators, no spaces."""

ASSET_TYPE_ORDER: tuple[AssetType, ...] = tuple(sorted(AssetType, key=lambda kind: kind.value))
"""The asset types in the order of their values: a column's codes index this tuple, so
sorting by code sorts by value, as the pure comparator orders its discrepancies."""


@functools.cache
def fast_available() -> bool:
    """Whether pyarrow and numpy are installed (the `fast` extra)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("pyarrow", "numpy"))
    except (ImportError, ValueError):  # a module set to None in sys.modules, as a host may to keep it out
        return False


class ColumnsError(ValueError):
    """A columnar batch is malformed; the message names the row and the column."""


def parse_columns(raw: object, side: Literal["local", "broker"], *, call: str) -> PositionColumns:
    """A book's columnar answer, checked as strictly as objects are (see `input`).

    Raises:
        ColumnsError: a bad value, named by call, row and column; or the `fast` extra is missing.
    """
    if not fast_available():
        msg = f"{call} answered with columns ({type(raw).__name__}), which need the fast extra: {FAST_EXTRA}"
        raise ColumnsError(msg)
    from reconciliation._columnar.input import columns_from_batch  # noqa: PLC0415 - the fast extra's

    return columns_from_batch(raw, side, call=call)


def is_columnar_batch(raw: object) -> bool:
    """Whether a book answered with columns: a `PositionColumns`, or anything that exports an
    Arrow stream (`__arrow_c_stream__`: a pyarrow Table or RecordBatch, a polars DataFrame)."""
    return isinstance(raw, PositionColumns) or hasattr(type(raw), "__arrow_c_stream__")


def _starts(column: DecimalColumn) -> tuple[int, ...]:
    return tuple(itertools.accumulate(map(len, column.parts), initial=0))


@attrs.frozen(eq=False)
class DecimalColumn:
    """A column of exact decimals as integers scaled by 10**`scale`, in parts (Arrow's chunks).

    Row i's scaled integer is the value times 10**scale where it fits within
    ±`input.LIMIT` (2**62, so that a difference of two still fits in 64 bits)
    and is known; elsewhere it means nothing. The parts are often views of the Arrow
    buffers, never written to, so a column read from a file is not copied. `fits` is
    False where the value does not fit (those rows are compared by the exact path) and
    None when every row fits. `known` is False where the value is missing (an unknown
    average cost) and None when none is. `exact` gives the original `Decimal`s of some
    rows (None where unknown), digits and exponent as they were given.
    """

    parts: tuple[npt.NDArray[np.int64], ...]
    scale: int
    exact: Callable[[npt.NDArray[np.intp]], list[Decimal | None]] = attrs.field(repr=False)
    fits: npt.NDArray[np.bool_] | None = None
    known: npt.NDArray[np.bool_] | None = None
    starts: tuple[int, ...] = attrs.field(
        init=False, default=attrs.Factory(_starts, takes_self=True), repr=False
    )
    """Where each part begins, and the length after the last."""

    def __len__(self) -> int:
        return self.starts[-1]

    def gather(self, rows: npt.NDArray[np.integer[Any]], picks: Picks | None = None) -> npt.NDArray[np.int64]:
        """The scaled integers at `rows`, in their order; `picks` (of `rows`, from a column in
        the same parts) saves finding each row's part again."""
        import numpy as np  # noqa: PLC0415 - the fast extra's

        if len(self.parts) == 1:
            gathered: npt.NDArray[np.int64] = self.parts[0][rows]
            return gathered
        if picks is None or picks.starts != self.starts:
            picks = Picks.of(rows, self.starts)
        out = np.zeros(len(rows), np.int64)
        for part, (inside, offsets) in zip(self.parts, picks.per_part, strict=True):
            out[inside] = part[offsets]
        return out


@attrs.frozen(eq=False)
class Picks:
    """Where some rows are in a column's parts: for each part, which of the rows fall in it
    and their offsets there."""

    starts: tuple[int, ...]
    per_part: tuple[tuple[npt.NDArray[np.intp], npt.NDArray[np.integer[Any]]], ...]

    @classmethod
    def of(cls, rows: npt.NDArray[np.integer[Any]], starts: tuple[int, ...]) -> Picks:
        import numpy as np  # noqa: PLC0415 - the fast extra's

        per_part: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.integer[Any]]]] = []
        for start, end in itertools.pairwise(starts):
            inside = np.flatnonzero((rows >= start) & (rows < end))
            per_part.append((inside, rows[inside] - start))
        return cls(starts, tuple(per_part))


@attrs.frozen(eq=False)
class PositionColumns:
    """One side's positions, validated, as columns: row i is one entry of the book.

    Like a list of positions it may hold a symbol more than once (netted by the
    comparison) and flat entries (quantity 0). `market_value` is the broker's, when
    given; it is never compared.

    Attributes:
        side: "local" (the engine's book) or "broker".
        symbols: an Arrow string ChunkedArray without nulls or empty symbols.
        asset_types: each row's asset type, as an index into `ASSET_TYPE_ORDER` (int8).
        quantity: signed quantities; every row known.
        avg_cost: average costs; unknown (None) where `known` is False.
        market_values: the broker's market values at some rows, exact, or None when the
            batch has none (checked like the other figures, but never compared).
        source: the objects the columns were made from, if they were; building
            `Position` objects back then returns these very objects.
        table: the checked Arrow table the columns were read from, if they were,
            under the documented column names; `__arrow_c_stream__` exports it, so the
            columns are themselves a batch a book may answer with.
    """

    side: Literal["local", "broker"]
    symbols: Any = attrs.field(repr=False)
    asset_types: npt.NDArray[np.int8] = attrs.field(repr=False)
    quantity: DecimalColumn = attrs.field(repr=False)
    avg_cost: DecimalColumn = attrs.field(repr=False)
    market_values: Callable[[npt.NDArray[np.intp]], list[Decimal | None]] | None = attrs.field(
        default=None, repr=False
    )
    source: Sequence[Position | BrokerPosition] | None = attrs.field(default=None, repr=False)
    table: Any = attrs.field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.asset_types)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The columns as an Arrow stream (the PyCapsule interface), under the documented names."""
        from reconciliation._columnar.input import as_table  # noqa: PLC0415 - the fast extra's

        return as_table(self).__arrow_c_stream__(requested_schema)

    def compare_sides(
        self,
        local: Sequence[Position] | ColumnarPositions,
        broker: Sequence[BrokerPosition] | ColumnarPositions,
        **options: Any,
    ) -> Comparison:
        """`ColumnarPositions.compare_sides`, by `compare.compare_any_positions`."""
        from reconciliation._columnar.compare import compare_any_positions  # noqa: PLC0415 - the fast extra's

        return compare_any_positions(  # the one implementation of ColumnarPositions is this class
            cast("Sequence[Position] | PositionColumns", local),
            cast("Sequence[BrokerPosition] | PositionColumns", broker),
            **options,
        )

    def entries_of(self, symbols: Collection[str]) -> Sequence[Position] | Sequence[BrokerPosition]:
        from reconciliation._columnar.input import rows_of_symbols  # noqa: PLC0415 - the fast extra's

        entries: list[Position] | list[BrokerPosition] = rows_of_symbols(self, symbols)
        return entries
