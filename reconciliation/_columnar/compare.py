"""The comparison of two `PositionColumns`: the pure comparator's rule, a million rows at a time.

It returns what `compare.compare_positions` returns for the same positions — the same
discrepancies with the same values (the original `Decimal`s, exponent included), in the
same order, the same `netted` list and `positions_checked` — in a fraction of the time,
and mostly outside the GIL (pyarrow and numpy release it), so the engine's threads keep
running. docs/architecture.md says how the libraries were chosen, by measurement.

How:

1. Both sides' symbols are dictionary-encoded together (Arrow), so each position
   (symbol and asset type) gets one dense integer id shared by both sides.
2. Each side's row numbers are scattered into an array indexed by id; a row that finds
   another in its place shows a position that side reported more than once.
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
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciliation._columnar.columns import ASSET_TYPE_ORDER, Picks, PositionColumns
from reconciliation._columnar.input import (
    aligned,
    columns_from_objects,
    rows_as_objects,
    taken,
)
from reconciliation._domain.compare import (
    CHUNK_SIZE,
    Comparison,
    Found,
    checked_discrepancies,
    compare_positions,
    net_in_chunks,
)
from reconciliation._domain.models import BrokerPosition, DiscrepancyType, Position

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterator, Sequence
    from decimal import Decimal

    import numpy.typing as npt  # noqa: TC004 - attrs does not evaluate annotations

    from reconciliation._columnar.columns import DecimalColumn
    from reconciliation._domain.models import Discrepancy, ReconciliationConfig

__all__ = ["compare_any_positions", "compare_columns"]

logger = logging.getLogger(__name__)

_INT64_MAX = 2**63 - 1

_BATCH = 10 * CHUNK_SIZE
"""How many discrepancies' values are read from the columns at once (Arrow calls, each short)."""

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
    pause = pause or (lambda: None)
    local_ids, broker_ids, count = _position_ids(local, broker)
    pause()
    found = _Classified.of(local, broker, (local_ids, broker_ids), count, config.cost_tolerance_pct)
    pause()
    local_exact, local_netted = net_in_chunks(
        _objects(local, np.flatnonzero(found.exact_key[local_ids]), pause), "local"
    )
    broker_exact, broker_netted = net_in_chunks(
        _objects(broker, np.flatnonzero(found.exact_key[broker_ids]), pause), "broker"
    )
    exact = compare_positions(
        list(local_exact.values()),
        list(broker_exact.values()),
        account_id=account_id,
        timestamp=timestamp,
        config=config,
        pause=pause,
    )
    del local_exact, broker_exact
    if found.exact_key.any():
        logger.debug(
            "%d of %d positions compared by the exact path (netted, or too large for 62 bits)",
            int(found.exact_key.sum()),
            count,
            extra={"account_id": account_id},
        )
    simple = list(found.discrepancies(local, broker, account_id, timestamp, config, pause))
    discrepancies = tuple(heapq.merge(simple, exact.discrepancies, key=_position_order))
    return Comparison(
        discrepancies=discrepancies, positions_checked=count, netted=(*local_netted, *broker_netted)
    )


def _objects(columns: PositionColumns, rows: npt.NDArray[np.intp], pause: Callable[[], object]) -> Iterator[list[Any]]:
    """The positions at `rows` as objects, `_BATCH` at a time: a position reported a million
    times is netted without a million objects alive at once."""
    for start in range(0, len(rows), _BATCH):
        yield rows_as_objects(columns, rows[start : start + _BATCH])
        pause()


def _position_order(discrepancy: Discrepancy) -> tuple[str, str]:
    return (discrepancy.symbol or "", discrepancy.asset_type.value if discrepancy.asset_type else "")


def _position_ids(
    local: PositionColumns, broker: PositionColumns
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], int]:
    """A dense id per distinct (symbol, asset type), for each side's rows, and how many ids.

    Both sides are encoded as two chunks of one array: the chunks share one growing
    dictionary, so the symbols are hashed once and never copied into one array. With
    several asset types, each (symbol id, type) pair is numbered by a running count over
    the table of all pairs: array passes, no second hashing."""
    symbols = [local.symbols, broker.symbols]
    if local.symbols.type != broker.symbols.type:
        symbols = [array.cast(pa.large_string()) for array in symbols]
    ids, count = _encoded(pa.chunked_array([*symbols[0].chunks, *symbols[1].chunks], type=symbols[0].type))
    if not _one_asset_type(local, broker):
        kinds = len(ASSET_TYPE_ORDER)
        keys = ids.astype(np.int64) * kinds + np.concatenate([local.asset_types, broker.asset_types])
        held = np.zeros(count * kinds, np.bool_)
        held[keys] = True
        dense = np.cumsum(held, dtype=np.int32)  # a key's id: how many distinct keys up to it, less one
        ids = dense[keys] - 1
        count = int(dense[-1]) if len(dense) else 0
    return ids[: len(local)], ids[len(local) :], count


def _encoded(values: Any) -> tuple[npt.NDArray[np.int32], int]:
    """Each value's index in the dictionary of the distinct values, and how many there are.

    Arrow gives each chunk the dictionary grown so far, so the last one holds them all.
    Its hash table (about 50 bytes a symbol) is freed at once, and the memory handed back:
    Arrow's allocator would otherwise keep it from the numpy arrays that follow."""
    encoded = pc.dictionary_encode(values)
    if not encoded.num_chunks:
        return np.zeros(0, np.int32), 0
    ids: npt.NDArray[np.int32] = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks])
    count = len(encoded.chunks[-1].dictionary)
    del encoded
    pa.default_memory_pool().release_unused()
    return ids, count


def _one_asset_type(local: PositionColumns, broker: PositionColumns) -> bool:
    codes = [side.asset_types for side in (local, broker) if len(side)]
    return not codes or all(bool((side == codes[0][0]).all()) for side in codes)


def _rows(ids: npt.NDArray[np.int32], count: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """For each id, a row of this side that has it (-1: none), and whether it has several."""
    rows = np.full(count, -1, np.int32)
    order = np.arange(len(ids), dtype=np.int32)
    rows[ids] = order
    several = np.zeros(count, np.bool_)
    several[ids[rows[ids] != order]] = True
    return rows, several


@attrs.frozen(eq=False)
class _Classified:
    """The positions classified by the vectorized rule, and those left to the exact path."""

    exact_key: npt.NDArray[np.bool_]
    kinds: npt.NDArray[np.int8]
    local_rows: npt.NDArray[np.intp]
    """Each discrepancy's local row, or -1 for a position only the broker holds."""
    broker_rows: npt.NDArray[np.intp]
    """Each discrepancy's broker row, or -1 for a position only the local book holds."""

    @classmethod
    def of(
        cls,
        local: PositionColumns,
        broker: PositionColumns,
        ids: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]],
        count: int,
        tolerance_pct: Decimal,
    ) -> _Classified:
        local_row, exact_key = _rows(ids[0], count)
        broker_row, several = _rows(ids[1], count)
        exact_key |= several
        del several
        local_quantity, broker_quantity = aligned(local.quantity, broker.quantity)
        local_cost, broker_cost = aligned(local.avg_cost, broker.avg_cost)
        for column, side_ids in (
            (local_quantity, ids[0]),
            (local_cost, ids[0]),
            (broker_quantity, ids[1]),
            (broker_cost, ids[1]),
        ):
            if column.fits is not None:
                exact_key[side_ids[~column.fits]] = True
        simple = ~exact_key
        held = local_row >= 0
        reported = broker_row >= 0
        both = simple & held & reported
        li, bi = local_row[both], broker_row[both]
        both_at = np.flatnonzero(both)
        local_only = local_row[simple & held & ~reported]
        broker_only = broker_row[simple & ~held & reported]
        del simple, held, reported, both, local_row, broker_row
        local_picks, broker_picks = Picks.of(li, local_quantity.starts), Picks.of(bi, broker_quantity.starts)
        lq, bq = local_quantity.gather(li, local_picks), broker_quantity.gather(bi, broker_picks)
        equal = lq == bq
        kinds = np.full(len(li), -1, np.int8)
        kinds[~equal & (bq == 0)] = _MISSING_BROKER
        kinds[~equal & (lq == 0) & (bq != 0)] = _MISSING_LOCAL
        kinds[~equal & (lq != 0) & (bq != 0)] = _QUANTITY
        candidates = np.flatnonzero(equal & (lq != 0) & _known(local_cost, li) & _known(broker_cost, bi))
        del lq, bq, equal
        local_costs = local_cost.gather(li, local_picks)[candidates]
        broker_costs = broker_cost.gather(bi, broker_picks)[candidates]
        del local_picks, broker_picks
        differ = local_costs != broker_costs
        candidates = candidates[differ]
        breaks, overflow = _costs_differ(local_costs[differ], broker_costs[differ], tolerance_pct)
        kinds[candidates[breaks]] = _COST
        exact_key[both_at[candidates[overflow]]] = True
        flagged = kinds >= 0
        local_only = local_only[local_quantity.gather(local_only) != 0]
        broker_only = broker_only[broker_quantity.gather(broker_only) != 0]
        return cls(
            exact_key,
            np.concatenate(
                [
                    kinds[flagged],
                    np.full(len(local_only), _MISSING_BROKER, np.int8),
                    np.full(len(broker_only), _MISSING_LOCAL, np.int8),
                ]
            ),
            np.concatenate([li[flagged], local_only, np.full(len(broker_only), -1, np.int32)]).astype(
                np.intp
            ),
            np.concatenate([bi[flagged], np.full(len(local_only), -1, np.int32), broker_only]).astype(
                np.intp
            ),
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
        """The discrepancies, sorted by symbol and asset type: their values read from the
        columns `_BATCH` at a time, built `CHUNK_SIZE` at a time, pausing after each."""
        if not len(self.kinds):
            return
        order, symbols = self._sorted(local, broker)
        pause()
        for start in range(0, len(order), _BATCH):
            entries = self._entries(
                local, broker, order[start : start + _BATCH], symbols[start : start + _BATCH]
            )
            pause()
            for first in range(0, len(entries), CHUNK_SIZE):
                yield from checked_discrepancies(
                    entries[first : first + CHUNK_SIZE], account_id, timestamp, config
                )
                pause()

    def _sorted(
        self, local: PositionColumns, broker: PositionColumns
    ) -> tuple[npt.NDArray[np.intp], list[str]]:
        """The discrepancies' order (by symbol, then asset type), and their symbols in it."""
        on_local = self.local_rows >= 0
        symbols: list[str] = taken(local.symbols, self.local_rows[on_local])
        symbols += taken(broker.symbols, self.broker_rows[~on_local])
        position = np.concatenate([np.flatnonzero(on_local), np.flatnonzero(~on_local)])
        codes = np.concatenate(
            [local.asset_types[self.local_rows[on_local]], broker.asset_types[self.broker_rows[~on_local]]]
        )
        table = pa.table({"symbol": pa.array(symbols, pa.large_string()), "asset_type": codes})
        order = pc.sort_indices(
            table, sort_keys=[("symbol", "ascending"), ("asset_type", "ascending")]
        ).to_numpy()
        sorted_rows: npt.NDArray[np.intp] = position[order]
        return sorted_rows, [symbols[index] for index in order.tolist()]

    def _entries(
        self, local: PositionColumns, broker: PositionColumns, rows: npt.NDArray[np.intp], symbols: list[str]
    ) -> list[Found]:
        kinds = self.kinds[rows]
        local_rows = self.local_rows[rows]
        broker_rows = self.broker_rows[rows]
        on_local = local_rows >= 0
        codes = np.zeros(len(rows), np.int8)
        for mask, side, side_rows in ((on_local, local, local_rows), (~on_local, broker, broker_rows)):
            codes[mask] = side.asset_types[side_rows[mask]]
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


def _known(column: DecimalColumn, rows: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_] | bool:
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
    **options: Any,
) -> Comparison:
    """`compare_columns` for books given as columns or as objects (put in columns first)."""
    pause = options.get("pause")
    local_columns = (
        local if isinstance(local, PositionColumns) else columns_from_objects(local, "local", pause=pause)
    )
    broker_columns = (
        broker if isinstance(broker, PositionColumns) else columns_from_objects(broker, "broker", pause=pause)
    )
    return compare_columns(local_columns, broker_columns, **options)
