"""The comparator's two baselines: the Python floor and design.md's pseudocode, as written.

Neither is used by the package. The floor does the least work that still gives the
same answer (the same four kinds, the same zero-is-flat rule) but yields bare tuples;
the straightforward one builds a `Discrepancy` per break the way design.md sketches it.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import compress, filterfalse
from operator import is_not
from typing import TYPE_CHECKING

from reconciliation._domain.models import AssetType, Discrepancy, DiscrepancyType, Position

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from reconciliation._domain.models import BrokerPosition, ReconciliationConfig

__all__ = ["floor_join", "floor_join_netting", "straightforward"]

_ML = DiscrepancyType.MISSING_LOCAL
_MB = DiscrepancyType.MISSING_BROKER
_QTY = DiscrepancyType.QUANTITY_MISMATCH
_COST = DiscrepancyType.COST_MISMATCH


def floor_join(local: Sequence[Position], broker: Sequence[BrokerPosition]) -> list[tuple[object, ...]]:
    """A bare dict join into (symbol, kind, local, broker) tuples: the Python floor."""
    broker_by_symbol = {p.symbol: p for p in broker}
    out = []
    seen = set()
    get = broker_by_symbol.get
    for p in local:
        symbol = p.symbol
        seen.add(symbol)
        b = get(symbol)
        lq = p.quantity
        bq = b.quantity if b is not None else 0
        if lq == bq:
            if lq and p.avg_cost != b.avg_cost:
                out.append((symbol, _COST, p.avg_cost, b.avg_cost))
        elif not bq:
            out.append((symbol, _MB, lq, None))
        elif not lq:
            out.append((symbol, _ML, None, bq))
        else:
            out.append((symbol, _QTY, lq, bq))
    for symbol, b in broker_by_symbol.items():
        if symbol not in seen and b.quantity:
            out.append((symbol, _ML, None, b.quantity))
    return out


_STOCK = AssetType.STOCK


def floor_join_netting(local: Sequence[Position], broker: Sequence[BrokerPosition]) -> list[tuple[object, ...]]:
    """The floor for real books: positions keyed by symbol and asset type (a stock by its
    bare symbol), the repeated ones found by C-level passes and netted (quantities summed,
    costs weighted by absolute quantity), the broker-only keys found by `filterfalse`."""
    local_by_key = _floor_index(local)
    broker_by_key = _floor_index(broker)
    out = []
    get = broker_by_key.get
    for key, p in local_by_key.items():
        b = get(key)
        lq = p.quantity
        bq = b.quantity if b is not None else 0
        if lq == bq:
            if lq and p.avg_cost != b.avg_cost:
                out.append((key, _COST, p.avg_cost, b.avg_cost))
        elif not bq:
            out.append((key, _MB, lq, None))
        elif not lq:
            out.append((key, _ML, None, bq))
        else:
            out.append((key, _QTY, lq, bq))
    for key in filterfalse(local_by_key.__contains__, broker_by_key):
        quantity = broker_by_key[key].quantity
        if quantity:
            out.append((key, _ML, None, quantity))
    return out


def _floor_index(side: Sequence[Position | BrokerPosition]) -> dict[object, Position | BrokerPosition]:
    keys = [p.symbol if p.asset_type is _STOCK else (p.symbol, p.asset_type) for p in side]
    by_key: dict[object, Position | BrokerPosition] = dict(zip(keys, side, strict=True))
    if len(by_key) == len(side):
        return by_key
    repeated = set(compress(keys, map(is_not, map(by_key.__getitem__, keys), side)))
    sums: dict[object, list[Decimal]] = {}
    for key, p in compress(zip(keys, side, strict=True), map(repeated.__contains__, keys)):
        size = abs(p.quantity)
        total = sums.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
        total[0] += p.quantity
        total[1] += size * p.avg_cost  # the bench books always know the cost
        total[2] += size
    for key, (quantity, cost_sum, weight) in sums.items():
        first = by_key[key]
        by_key[key] = Position(first.symbol, quantity, cost_sum / weight, first.asset_type)
    return by_key


def straightforward(
    local: Sequence[Position],
    broker: Sequence[BrokerPosition],
    *,
    account_id: str,
    timestamp: dt.datetime,
    config: ReconciliationConfig,
) -> list[Discrepancy]:
    """design.md's `_compare_positions`, written out as it stands."""
    discrepancies = []
    local_by_symbol = {p.symbol: p for p in local}
    broker_by_symbol = {p.symbol: p for p in broker}
    all_symbols = set(local_by_symbol) | set(broker_by_symbol)
    for symbol in all_symbols:
        local_pos = local_by_symbol.get(symbol)
        broker_pos = broker_by_symbol.get(symbol)
        if local_pos is None:
            kind, lv, bv = _ML, None, broker_pos.quantity
        elif broker_pos is None:
            kind, lv, bv = _MB, local_pos.quantity, None
        elif local_pos.quantity != broker_pos.quantity:
            kind, lv, bv = _QTY, local_pos.quantity, broker_pos.quantity
        elif local_pos.avg_cost != broker_pos.avg_cost:
            kind, lv, bv = _COST, local_pos.avg_cost, broker_pos.avg_cost
        else:
            continue
        discrepancies.append(
            Discrepancy(
                type=kind,
                severity=config.severity_of(kind),
                symbol=symbol,
                local_value=lv,
                broker_value=bv,
                timestamp=timestamp,
                account_id=account_id,
            )
        )
    return discrepancies
