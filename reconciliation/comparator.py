"""Classify how the local book and the broker differ: pure functions, no I/O.

Positions are joined by symbol and compared exactly, in `Decimal`: a quantity of 0 is
the same as no position (brokers omit flat ones), a cost is compared only when the
quantities agree, and each symbol yields at most one position discrepancy. Balances are
compared against the configured tolerances, where a difference equal to a tolerance is
not a break. The service logs and publishes what this module returns.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, TypeVar

import attrs

from reconciliation.models import (
    BrokerPosition,
    Discrepancy,
    DiscrepancyType,
    NettedSymbol,
    Position,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterable, Sequence

    from reconciliation.models import (
        BrokerAccount,
        LocalAccount,
        ReconciliationConfig,
        Snapshot,
    )

__all__ = ["Comparison", "compare", "compare_accounts", "compare_positions"]

_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Overflow],
)
"""Sums, differences and products of finite decimals come out exact: no rounding."""

_AVERAGE = decimal.Context(prec=34)
"""A weighted average is a division, so it is rounded, to 34 significant digits."""

_Side = TypeVar("_Side", Position, BrokerPosition)

_HUNDRED = Decimal(100)

_FLAT = BrokerPosition(symbol="(flat)", quantity=0, avg_cost=0, market_value=0)
"""What the join finds for a symbol the broker omits: brokers leave flat positions out."""

_Found = tuple[str | None, DiscrepancyType, Decimal | None, Decimal | None]
"""Symbol, type, local value, broker value: a discrepancy before it is built."""

_MISSING_LOCAL = DiscrepancyType.MISSING_LOCAL
_MISSING_BROKER = DiscrepancyType.MISSING_BROKER
_QUANTITY = DiscrepancyType.QUANTITY_MISMATCH
_COST = DiscrepancyType.COST_MISMATCH


@attrs.frozen
class Comparison:
    """What one comparison found, and how many symbols it looked at.

    `netted` lists every symbol a side reported more than once (see `compare_positions`).
    """

    discrepancies: tuple[Discrepancy, ...]
    positions_checked: int
    netted: tuple[NettedSymbol, ...] = ()


def compare(snapshot: Snapshot, config: ReconciliationConfig) -> Comparison:
    """Compare both sides of a snapshot: positions by symbol first, then cash, then equity."""
    positions = compare_positions(
        snapshot.local_positions,
        snapshot.broker_positions,
        account_id=snapshot.account_id,
        timestamp=snapshot.taken_at,
        config=config,
    )
    accounts = compare_accounts(
        snapshot.local_account,
        snapshot.broker_account,
        account_id=snapshot.account_id,
        timestamp=snapshot.taken_at,
        config=config,
    )
    if not accounts:
        return positions
    return attrs.evolve(positions, discrepancies=positions.discrepancies + accounts)


def compare_positions(
    local: Sequence[Position],
    broker: Sequence[BrokerPosition],
    *,
    account_id: str,
    timestamp: dt.datetime,
    config: ReconciliationConfig,
) -> Comparison:
    """Join both books by symbol and classify every symbol that differs.

    A symbol held on one side only (a quantity of 0 counts as not held) is
    missing_local or missing_broker; held on both with different quantities, a
    quantity_mismatch; with equal quantities but different average costs, a
    cost_mismatch. The values are the quantities, or the average costs for a
    cost_mismatch, and None for the side that holds nothing.

    A side that reports one symbol several times (hedge-mode legs, one entry per venue)
    is netted rather than letting one entry overwrite another: the quantities are
    summed and the average cost is weighted by each entry's *absolute* quantity, so it
    stays within the range of the entries' costs even when long and short legs net out.
    Each netting is listed in `Comparison.netted`.

    Returns:
        The discrepancies sorted by symbol, and the number of distinct symbols on
        either side, flat entries included.
    """
    local_by_symbol = {p.symbol: p for p in local}
    netted: list[NettedSymbol] = []
    if len(local_by_symbol) < len(local):
        local_by_symbol = _net(local, "local", _net_local, netted)
    broker_by_symbol = {p.symbol: p for p in broker}
    if len(broker_by_symbol) < len(broker):
        broker_by_symbol = _net(broker, "broker", _net_broker, netted)

    found: list[_Found] = []
    broker_get = broker_by_symbol.get
    for symbol, held in local_by_symbol.items():
        reported = broker_get(symbol, _FLAT)
        local_quantity = held.quantity
        broker_quantity = reported.quantity
        if local_quantity == broker_quantity:
            if local_quantity and held.avg_cost != reported.avg_cost:
                found.append((symbol, _COST, held.avg_cost, reported.avg_cost))
        elif not broker_quantity:
            found.append((symbol, _MISSING_BROKER, local_quantity, None))
        elif not local_quantity:
            found.append((symbol, _MISSING_LOCAL, None, broker_quantity))
        else:
            found.append((symbol, _QUANTITY, local_quantity, broker_quantity))

    broker_only = broker_by_symbol.keys() - local_by_symbol.keys()
    for symbol in broker_only:
        broker_quantity = broker_by_symbol[symbol].quantity
        if broker_quantity:
            found.append((symbol, _MISSING_LOCAL, None, broker_quantity))

    found.sort(key=_by_symbol)
    return Comparison(
        discrepancies=_discrepancies(found, account_id, timestamp, config),
        positions_checked=len(local_by_symbol) + len(broker_only),
        netted=tuple(netted),
    )


def compare_accounts(
    local: LocalAccount,
    broker: BrokerAccount,
    *,
    account_id: str,
    timestamp: dt.datetime,
    config: ReconciliationConfig,
) -> tuple[Discrepancy, ...]:
    """Flag cash and equity that differ by more than their tolerances, in that order.

    Cash is a break when abs(local - broker) > `config.cash_tolerance`; equity when
    abs(local - broker) > abs(broker equity) * `config.equity_tolerance_pct` / 100.
    The arithmetic is exact whatever the magnitudes, so a difference of one cent is
    seen on any balance.
    """
    found: list[_Found] = []
    cash_gap = _EXACT.subtract(local.cash, broker.cash).copy_abs()
    if cash_gap > config.cash_tolerance:
        found.append((None, DiscrepancyType.CASH_MISMATCH, local.cash, broker.cash))
    equity_gap = _EXACT.subtract(local.total_equity, broker.total_equity).copy_abs()
    allowed_times_100 = _EXACT.multiply(broker.total_equity.copy_abs(), config.equity_tolerance_pct)
    if _EXACT.multiply(equity_gap, _HUNDRED) > allowed_times_100:
        found.append((None, DiscrepancyType.EQUITY_MISMATCH, local.total_equity, broker.total_equity))
    return _discrepancies(found, account_id, timestamp, config)


def _discrepancies(
    found: Iterable[_Found], account_id: str, timestamp: dt.datetime, config: ReconciliationConfig
) -> tuple[Discrepancy, ...]:
    severity = {kind: config.severity_of(kind) for kind in DiscrepancyType}
    return tuple(
        Discrepancy(
            type=kind,
            severity=severity[kind],
            symbol=symbol,
            local_value=local_value,
            broker_value=broker_value,
            timestamp=timestamp,
            account_id=account_id,
        )
        for symbol, kind, local_value, broker_value in found
    )


def _by_symbol(entry: _Found) -> str:
    return entry[0] or ""


def _net(
    entries: Iterable[_Side],
    side: Literal["local", "broker"],
    merge: Callable[[Sequence[_Side]], _Side],
    netted: list[NettedSymbol],
) -> dict[str, _Side]:
    """Index `entries` by symbol, merging the symbols that occur more than once."""
    groups: dict[str, list[_Side]] = {}
    for entry in entries:
        groups.setdefault(entry.symbol, []).append(entry)
    by_symbol: dict[str, _Side] = {}
    for symbol, group in groups.items():
        if len(group) == 1:
            by_symbol[symbol] = group[0]
        else:
            by_symbol[symbol] = merge(group)
            netted.append(NettedSymbol(side=side, symbol=symbol, entries=len(group)))
    netted.sort(key=_netted_order)
    return by_symbol


def _netted_order(entry: NettedSymbol) -> tuple[bool, str]:
    return (entry.side == "broker", entry.symbol)


def _net_quantity_and_cost(group: Sequence[Position | BrokerPosition]) -> tuple[Decimal, Decimal]:
    """The summed quantity and the absolute-quantity-weighted average cost of `group`."""
    quantity = Decimal(0)
    weight = Decimal(0)
    cost_sum = Decimal(0)
    for entry in group:
        quantity = _EXACT.add(quantity, entry.quantity)
        size = entry.quantity.copy_abs()
        weight = _EXACT.add(weight, size)
        cost_sum = _EXACT.add(cost_sum, _EXACT.multiply(size, entry.avg_cost))
    if not weight:
        return quantity, group[0].avg_cost
    return quantity, _AVERAGE.divide(cost_sum, weight)


def _net_local(group: Sequence[Position]) -> Position:
    quantity, avg_cost = _net_quantity_and_cost(group)
    first = group[0]
    return Position(first.symbol, quantity, avg_cost, first.asset_type)


def _net_broker(group: Sequence[BrokerPosition]) -> BrokerPosition:
    quantity, avg_cost = _net_quantity_and_cost(group)
    market_value = Decimal(0)
    for entry in group:
        market_value = _EXACT.add(market_value, entry.market_value)
    first = group[0]
    return BrokerPosition(first.symbol, quantity, avg_cost, market_value, first.asset_type)
