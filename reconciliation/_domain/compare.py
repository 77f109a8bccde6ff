"""Classify how the local book and the broker differ: pure functions, no I/O.

Positions are joined by symbol and compared exactly, in `Decimal`: a quantity of 0 is
the same as no position (brokers omit flat ones), a cost is compared only when the
quantities agree, and each symbol yields at most one position discrepancy. Balances are
compared against the configured tolerances, where a difference equal to a tolerance is
not a break. The service logs and publishes what this module returns.
"""

from __future__ import annotations

import decimal
import itertools
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, TypeVar

import attrs

from reconciliation._domain.models import (
    BrokerPosition,
    Discrepancy,
    DiscrepancyType,
    NettedSymbol,
    Position,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from reconciliation._domain.models import (
        BrokerAccount,
        LocalAccount,
        ReconciliationConfig,
        Snapshot,
    )

__all__ = ["CHUNK_SIZE", "Comparison", "compare", "compare_accounts", "compare_positions"]

_T = TypeVar("_T")

CHUNK_SIZE = 1_000
"""With a `pause`, how many entries are handled between two calls to it (about 0.1 ms)."""

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


def compare(
    snapshot: Snapshot, config: ReconciliationConfig, *, pause: Callable[[], object] | None = None
) -> Comparison:
    """Compare both sides of a snapshot: positions by symbol first, then cash, then equity.

    `pause`, if given, is called between chunks of `CHUNK_SIZE` entries (see `compare_positions`).
    """
    positions = compare_positions(
        snapshot.local_positions,
        snapshot.broker_positions,
        account_id=snapshot.account_id,
        timestamp=snapshot.taken_at,
        config=config,
        pause=pause,
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
    pause: Callable[[], object] | None = None,
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

    The work is done in pure-Python loops, so a thread running it gives the GIL to
    other threads only every switch interval (5 ms): in a host engine, a million-position
    comparison would delay every other thread by that much, again and again. Given a
    `pause` (such as `os.sched_yield`, which releases the GIL), the comparison calls it
    every `CHUNK_SIZE` entries so that the engine's threads get their turn sooner.

    Returns:
        The discrepancies sorted by symbol, and the number of distinct symbols on
        either side, flat entries included.
    """
    netted: list[NettedSymbol] = []
    local_by_symbol = _index(local, "local", _net_local, netted, pause)
    broker_by_symbol = _index(broker, "broker", _net_broker, netted, pause)
    found: list[_Found] = []
    _classify_held(local_by_symbol, broker_by_symbol, found, pause)
    broker_only = _classify_broker_only(local_by_symbol, broker_by_symbol, found, pause)
    found.sort(key=_by_symbol)
    discrepancies: list[Discrepancy] = []
    for chunk in _chunks(found, pause):
        discrepancies.extend(_discrepancies(chunk, account_id, timestamp, config))
    return Comparison(
        discrepancies=tuple(discrepancies),
        positions_checked=len(local_by_symbol) + broker_only,
        netted=tuple(netted),
    )


def _index(
    entries: Sequence[_Side],
    side: Literal["local", "broker"],
    merge: Callable[[Sequence[_Side]], _Side],
    netted: list[NettedSymbol],
    pause: Callable[[], object] | None,
) -> dict[str, _Side]:
    by_symbol: dict[str, _Side] = {}
    for chunk in _chunks(entries, pause):
        by_symbol.update({entry.symbol: entry for entry in chunk})
    if len(by_symbol) < len(entries):
        return _net(entries, side, merge, netted)
    return by_symbol


def _classify_held(
    local_by_symbol: dict[str, Position],
    broker_by_symbol: dict[str, BrokerPosition],
    found: list[_Found],
    pause: Callable[[], object] | None,
) -> None:
    """Classify every symbol of the local book against the broker's (flat if absent)."""
    broker_get = broker_by_symbol.get
    append = found.append
    for chunk in _chunks(local_by_symbol.items(), pause):
        for symbol, held in chunk:
            reported = broker_get(symbol, _FLAT)
            local_quantity = held.quantity
            broker_quantity = reported.quantity
            if local_quantity == broker_quantity:
                if local_quantity and held.avg_cost != reported.avg_cost:
                    append((symbol, _COST, held.avg_cost, reported.avg_cost))
            elif not broker_quantity:
                append((symbol, _MISSING_BROKER, local_quantity, None))
            elif not local_quantity:
                append((symbol, _MISSING_LOCAL, None, broker_quantity))
            else:
                append((symbol, _QUANTITY, local_quantity, broker_quantity))


def _classify_broker_only(
    local_by_symbol: dict[str, Position],
    broker_by_symbol: dict[str, BrokerPosition],
    found: list[_Found],
    pause: Callable[[], object] | None,
) -> int:
    """Flag the broker's symbols the local book lacks; returns how many there are, flat included."""
    count = 0
    for chunk in _chunks(broker_by_symbol.items(), pause):
        for symbol, reported in chunk:
            if symbol not in local_by_symbol:
                count += 1
                if reported.quantity:
                    found.append((symbol, _MISSING_LOCAL, None, reported.quantity))
    return count


def _chunks(entries: Iterable[_T], pause: Callable[[], object] | None) -> Iterator[Iterable[_T]]:
    """`entries` whole without a `pause`; else in chunks of `CHUNK_SIZE`, pausing after each."""
    if pause is None:
        yield entries
        return
    iterator = iter(entries)
    while chunk := list(itertools.islice(iterator, CHUNK_SIZE)):
        yield chunk
        pause()


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
