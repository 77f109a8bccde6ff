"""The comparison of two `PositionColumns`: the pure comparator's rule, a million rows at a time.

It returns what `compare.compare_positions` returns for the same positions — the same
discrepancies with the same values (the original `Decimal`s, exponent included), in the
same order, the same `netted` list and `positions_checked` — in a fraction of the time,
and mostly outside the GIL (pyarrow and numpy release it), so the engine's threads keep
running. docs/architecture.md says how the libraries were chosen, by measurement.

How:

1. Both sides' symbols are dictionary-encoded together (Arrow), so each position
   (symbol and asset type) gets one dense integer id shared by both sides.
2. Each side's rows are scattered into arrays indexed by id, and the counts per id
   show which positions a side reported more than once.
3. Quantities and costs are compared as integers at a common scale (`DecimalColumn`),
   costs against `cost_tolerance_pct` as `|l - b| * 100 * d > |b| * n` for the tolerance
   n / d, all exact.
4. A position that is not this simple case goes to the exact path: the pure comparator,
   given just those positions as objects. That is a position a side reported several
   times (it is netted, and its weighted average cost is a rounded division), one with
   a value that does not fit in 62 bits at the common scale, and one whose tolerance
   check could overflow 64 bits. Values are never rounded to fit: they are compared
   exactly, only more slowly.
5. The discrepancies found are sorted by symbol and asset type (Arrow's sort compares
   UTF-8 bytes, which orders as Python orders `str`) and merged with the exact path's.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciliation._domain.columnar_input import (
    NotColumnarError,
    aligned,
    columns_from_objects,
    rows_as_objects,
)
from reconciliation._domain.columns import ASSET_TYPE_ORDER, PositionColumns
from reconciliation._domain.compare import CHUNK_SIZE, Comparison, Found, compare_positions, discrepancies_of
from reconciliation._domain.models import BrokerPosition, DiscrepancyType, Position

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterator, Sequence
    from decimal import Decimal

    import numpy.typing as npt

    from reconciliation._domain.columns import DecimalColumn
    from reconciliation._domain.models import Discrepancy, ReconciliationConfig

__all__ = ["compare_any_positions", "compare_columns"]

logger = logging.getLogger(__name__)

_INT64_MAX = 2**63 - 1

_Side = TypeVar("_Side", Position, BrokerPosition)

_MISSING_LOCAL, _MISSING_BROKER, _QUANTITY, _COST = 0, 1, 2, 3
_KINDS = (
    DiscrepancyType.MISSING_LOCAL,
    DiscrepancyType.MISSING_BROKER,
    DiscrepancyType.QUANTITY_MISMATCH,
    DiscrepancyType.COST_MISMATCH,
)


def compare_columns(
    local: PositionColumns,
    broker: PositionColumns,
    *,
    account_id: str,
    timestamp: dt.datetime,
    config: ReconciliationConfig,
    pause: Callable[[], object] | None = None,
) -> Comparison:
    """Join both books by symbol and asset type and classify every position that differs,
    exactly as `compare.compare_positions` does (see it for the rule).

    `pause`, if given, is called between the steps and between chunks of the Python
    work (building the discrepancies), as the pure comparator calls it.
    """
    pause = pause or _no_pause
    keys, count = _position_ids(local, broker)
    pause()
    found = _Classified.of(local, broker, keys, count, config.cost_tolerance_pct)
    pause()
    exact = compare_positions(
        rows_as_objects(local, np.flatnonzero(found.exact_key[keys[: len(local)]])),
        rows_as_objects(broker, np.flatnonzero(found.exact_key[keys[len(local) :]])),
        account_id=account_id,
        timestamp=timestamp,
        config=config,
        pause=pause,
    )
    if found.exact_key.any():
        logger.debug(
            "%d of %d positions compared by the exact path (netted, or too large for 62 bits)",
            int(found.exact_key.sum()),
            count,
            extra={"account_id": account_id},
        )
    simple = list(found.discrepancies(local, broker, account_id, timestamp, config, pause))
    discrepancies = tuple(heapq.merge(simple, exact.discrepancies, key=_position_order))
    return Comparison(discrepancies=discrepancies, positions_checked=count, netted=exact.netted)


def _no_pause() -> None:
    return None


def _position_order(discrepancy: Discrepancy) -> tuple[str, str]:
    return (discrepancy.symbol or "", discrepancy.asset_type.value if discrepancy.asset_type else "")


def _position_ids(local: PositionColumns, broker: PositionColumns) -> tuple[npt.NDArray[np.intp], int]:
    """A dense id per distinct (symbol, asset type) for every row, local rows first, and how many."""
    symbols = [local.symbols, broker.symbols]
    if local.symbols.type != broker.symbols.type:
        symbols = [array.cast(pa.large_string()) for array in symbols]
    encoded = pc.dictionary_encode(pa.concat_arrays(symbols))
    ids = encoded.indices.to_numpy().astype(np.intp, copy=False)
    count = len(encoded.dictionary)
    codes = np.concatenate([local.asset_types, broker.asset_types])
    if codes.size and (codes != codes[0]).any():
        combined = ids.astype(np.int64) * len(ASSET_TYPE_ORDER) + codes
        encoded = pc.dictionary_encode(pa.array(combined, pa.int64()))
        ids = encoded.indices.to_numpy().astype(np.intp, copy=False)
        count = len(encoded.dictionary)
    return ids, count


class _Classified:
    """The positions classified by the vectorized rule, and those left to the exact path."""

    def __init__(
        self,
        exact_key: npt.NDArray[np.bool_],
        kinds: npt.NDArray[np.int8],
        local_rows: npt.NDArray[np.intp],
        broker_rows: npt.NDArray[np.intp],
    ) -> None:
        self.exact_key = exact_key
        self.kinds = kinds
        self.local_rows = local_rows
        """Each discrepancy's local row, or -1 for a position only the broker holds."""
        self.broker_rows = broker_rows
        """Each discrepancy's broker row, or -1 for a position only the local book holds."""

    @classmethod
    def of(
        cls,
        local: PositionColumns,
        broker: PositionColumns,
        keys: npt.NDArray[np.intp],
        count: int,
        tolerance_pct: Decimal,
    ) -> _Classified:
        held = len(local)
        local_keys, broker_keys = keys[:held], keys[held:]
        local_count = np.bincount(local_keys, minlength=count)
        broker_count = np.bincount(broker_keys, minlength=count)
        local_quantity, broker_quantity = aligned(local.quantity, broker.quantity)
        local_cost, broker_cost = aligned(local.avg_cost, broker.avg_cost)
        exact_key = (local_count > 1) | (broker_count > 1)
        for column, side_keys in (
            (local_quantity, local_keys),
            (local_cost, local_keys),
            (broker_quantity, broker_keys),
            (broker_cost, broker_keys),
        ):
            if column.fits is not None:
                exact_key[side_keys[~column.fits]] = True
        local_row = _row_of(local_keys, count)
        broker_row = _row_of(broker_keys, count)
        simple = ~exact_key
        both = np.flatnonzero(simple & (local_count == 1) & (broker_count == 1))
        li, bi = local_row[both], broker_row[both]
        lq, bq = local_quantity.scaled[li], broker_quantity.scaled[bi]
        equal = lq == bq
        kinds = np.full(len(both), -1, np.int8)
        kinds[~equal & (bq == 0)] = _MISSING_BROKER
        kinds[~equal & (lq == 0) & (bq != 0)] = _MISSING_LOCAL
        kinds[~equal & (lq != 0) & (bq != 0)] = _QUANTITY
        candidates = np.flatnonzero(
            equal
            & (lq != 0)
            & _known(local_cost, li)
            & _known(broker_cost, bi)
            & (local_cost.scaled[li] != broker_cost.scaled[bi])
        )
        breaks, overflow = _costs_differ(
            local_cost.scaled[li[candidates]], broker_cost.scaled[bi[candidates]], tolerance_pct
        )
        kinds[candidates[breaks]] = _COST
        exact_key[both[candidates[overflow]]] = True
        flagged = kinds >= 0
        local_only = local_row[np.flatnonzero(simple & (local_count == 1) & (broker_count == 0))]
        local_only = local_only[local_quantity.scaled[local_only] != 0]
        broker_only = broker_row[np.flatnonzero(simple & (local_count == 0) & (broker_count == 1))]
        broker_only = broker_only[broker_quantity.scaled[broker_only] != 0]
        none_l = np.full(len(broker_only), -1, np.intp)
        none_b = np.full(len(local_only), -1, np.intp)
        return cls(
            exact_key,
            np.concatenate(
                [
                    kinds[flagged],
                    np.full(len(local_only), _MISSING_BROKER, np.int8),
                    np.full(len(broker_only), _MISSING_LOCAL, np.int8),
                ]
            ),
            np.concatenate([li[flagged], local_only, none_l]),
            np.concatenate([bi[flagged], none_b, broker_only]),
        )

    def discrepancies(
        self,
        local: PositionColumns,
        broker: PositionColumns,
        account_id: str,
        timestamp: dt.datetime,
        config: ReconciliationConfig,
        pause: Callable[[], object],
    ) -> Iterator[Discrepancy]:
        """The discrepancies, sorted by symbol and asset type, built a chunk at a time."""
        if not len(self.kinds):
            return
        order = self._sorted(local, broker)
        for start in range(0, len(order), CHUNK_SIZE):
            rows = order[start : start + CHUNK_SIZE]
            yield from discrepancies_of(self._entries(local, broker, rows), account_id, timestamp, config)
            pause()

    def _sorted(self, local: PositionColumns, broker: PositionColumns) -> npt.NDArray[np.intp]:
        on_local = self.local_rows >= 0
        symbols = [
            local.symbols.take(pa.array(self.local_rows[on_local])),
            broker.symbols.take(pa.array(self.broker_rows[~on_local])),
        ]
        if symbols[0].type != symbols[1].type:
            symbols = [array.cast(pa.large_string()) for array in symbols]
        position = np.concatenate([np.flatnonzero(on_local), np.flatnonzero(~on_local)])
        codes = np.concatenate(
            [local.asset_types[self.local_rows[on_local]], broker.asset_types[self.broker_rows[~on_local]]]
        )
        table = pa.table({"symbol": pa.concat_arrays(symbols), "asset_type": codes})
        order = pc.sort_indices(table, sort_keys=[("symbol", "ascending"), ("asset_type", "ascending")])
        sorted_rows: npt.NDArray[np.intp] = position[order.to_numpy()]
        return sorted_rows

    def _entries(
        self, local: PositionColumns, broker: PositionColumns, rows: npt.NDArray[np.intp]
    ) -> list[Found]:
        kinds = self.kinds[rows]
        local_rows = self.local_rows[rows]
        broker_rows = self.broker_rows[rows]
        on_local = local_rows >= 0
        symbols: list[str] = [""] * len(rows)
        codes = np.zeros(len(rows), np.int8)
        for mask, side, side_rows in ((on_local, local, local_rows), (~on_local, broker, broker_rows)):
            where = np.flatnonzero(mask)
            codes[where] = side.asset_types[side_rows[where]]
            taken = side.symbols.take(pa.array(side_rows[where], pa.int64())).to_pylist()
            for index, symbol in zip(where.tolist(), taken, strict=True):
                symbols[index] = symbol
        cost = kinds == _COST
        local_values = _values(
            len(rows),
            local_rows,
            [(cost, local.avg_cost), ((kinds == _QUANTITY) | (kinds == _MISSING_BROKER), local.quantity)],
        )
        broker_values = _values(
            len(rows),
            broker_rows,
            [(cost, broker.avg_cost), ((kinds == _QUANTITY) | (kinds == _MISSING_LOCAL), broker.quantity)],
        )
        return [
            (symbol, ASSET_TYPE_ORDER[code], _KINDS[kind], local_value, broker_value, None)
            for symbol, code, kind, local_value, broker_value in zip(
                symbols, codes.tolist(), kinds.tolist(), local_values, broker_values, strict=True
            )
        ]


def _values(
    size: int, rows: npt.NDArray[np.intp], sources: list[tuple[npt.NDArray[np.bool_], DecimalColumn]]
) -> list[Decimal | None]:
    """The exact value of each entry, from the column its mask picks; None where none does."""
    values: list[Decimal | None] = [None] * size
    for mask, column in sources:
        where = np.flatnonzero(mask)
        for index, value in zip(where.tolist(), column.exact(rows[where]), strict=True):
            values[index] = value
    return values


def _row_of(keys: npt.NDArray[np.intp], count: int) -> npt.NDArray[np.intp]:
    """For each id, a row of this side that has it (the last), or -1."""
    rows = np.full(count, -1, np.intp)
    rows[keys] = np.arange(len(keys), dtype=np.intp)
    return rows


def _known(column: DecimalColumn, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_] | bool:
    return True if column.known is None else column.known[rows]


def _costs_differ(
    local: npt.NDArray[np.int64], broker: npt.NDArray[np.int64], tolerance_pct: Decimal
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which costs (different, both known, at one scale) differ by more than the tolerance:
    `|l - b| * 100 > |b| * tolerance_pct`, as `|l - b| * 100 * d > |b| * n` for
    tolerance_pct = n / d; and which could not be decided in 64 bits (left to the exact path)."""
    if not tolerance_pct:
        return np.ones(len(local), np.bool_), np.zeros(len(local), np.bool_)
    numerator, denominator = tolerance_pct.as_integer_ratio()
    gap = np.abs(local - broker)
    reference = np.abs(broker)
    gap_factor = 100 * denominator
    safe = (gap <= _INT64_MAX // gap_factor) & (reference <= _INT64_MAX // numerator)
    if not safe.any():
        return safe, np.ones(len(local), np.bool_)
    gap = np.where(safe, gap, 0)
    reference = np.where(safe, reference, 0)
    differ = safe & (gap * np.int64(min(gap_factor, _INT64_MAX)) > reference * np.int64(numerator))
    return differ, ~safe


def compare_any_positions(
    local: Sequence[Position] | PositionColumns,
    broker: Sequence[BrokerPosition] | PositionColumns,
    *,
    account_id: str,
    timestamp: dt.datetime,
    config: ReconciliationConfig,
    pause: Callable[[], object] | None = None,
) -> Comparison:
    """`compare_columns` for books given as columns or as objects (put in columns first).

    Objects that cannot be put in columns (a symbol that is not valid Unicode) are
    compared as objects, the columns side turned into objects too.
    """
    try:
        local_columns = (
            local if isinstance(local, PositionColumns) else columns_from_objects(local, "local", pause=pause)
        )
        broker_columns = (
            broker
            if isinstance(broker, PositionColumns)
            else columns_from_objects(broker, "broker", pause=pause)
        )
    except NotColumnarError as exc:
        logger.debug("Compared as objects: %s", exc, extra={"account_id": account_id})
        return compare_positions(
            _as_objects(local),
            _as_objects(broker),
            account_id=account_id,
            timestamp=timestamp,
            config=config,
            pause=pause,
        )
    return compare_columns(
        local_columns, broker_columns, account_id=account_id, timestamp=timestamp, config=config, pause=pause
    )


def _as_objects(side: Sequence[_Side] | PositionColumns) -> list[_Side]:
    if isinstance(side, PositionColumns):
        return rows_as_objects(side, np.arange(len(side), dtype=np.intp))
    return list(side)
