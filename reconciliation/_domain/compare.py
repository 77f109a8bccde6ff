"""Classify how the local book and the broker differ: pure functions, no I/O.

Positions are joined by symbol and asset type and compared exactly, in `Decimal`: a
quantity of 0 is the same as no position (brokers omit flat ones), a cost is compared
only when the quantities agree and both sides know it, and each position yields at most
one position discrepancy. Costs and balances are compared against the configured
tolerances, where a difference equal to a tolerance is not a break. Cash is compared per
currency when both sides give it per currency. The service logs and publishes what this
module returns.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import compress, filterfalse, islice
from operator import is_not
from typing import TYPE_CHECKING, Literal, TypeVar, cast

import attrs

from reconciliation._domain.models import (
    AssetType,
    BrokerPosition,
    Discrepancy,
    DiscrepancyType,
    NettedSymbol,
    Position,
)
from reconciliation._domain.protocols import ColumnarPositions
from reconciliation._domain.values import EXACT, MAX_DECIMAL_PLACES, ROUNDED, quotient

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from reconciliation._domain.models import (
        BrokerAccount,
        LocalAccount,
        ReconciliationConfig,
        Snapshot,
    )

__all__ = [
    "CHUNK_SIZE",
    "Comparison",
    "Found",
    "checked_discrepancies",
    "compare",
    "compare_accounts",
    "compare_positions",
    "discrepancies_of",
    "net_in_chunks",
    "position_key",
]

_T = TypeVar("_T")

CHUNK_SIZE = 4_000
"""With a `pause`, how many entries are handled between two calls to it (about 0.4 ms): few
enough that the GIL is never held long, many enough that pausing (and the clock read a
`pause` may make) costs little next to the work."""

_AVERAGE_PLACES = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)
"""A weighted average is rounded (`ROUNDED`), and to the decimal places a position may carry,
so that netting a tiny cost among huge quantities gives a position, not a refused one."""

_Side = TypeVar("_Side", Position, BrokerPosition)

_HUNDRED = Decimal(100)
_ZERO = Decimal(0)

_FLAT = BrokerPosition(symbol="(flat)", quantity=0, avg_cost=None, market_value=0)
"""What the join finds for a position the broker omits: brokers leave flat positions out."""

_STOCK = AssetType.STOCK

_Key = str | tuple[str, AssetType]
"""What identifies a position on either side: its symbol and its asset type. A stock's is
its bare symbol, so that the common case hashes a string, not an enum (a Python-level hash)."""

Found = tuple[str | None, AssetType | None, DiscrepancyType, Decimal | None, Decimal | None, str | None]
"""Symbol, asset type, type, local value, broker value, currency: a discrepancy before it is built."""

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
    """Compare both sides of a snapshot: positions first, then cash, then equity.

    When a side arrived as columns (`ColumnarPositions`, the `fast` extra), the columns
    compare the positions, with the same result as objects would give. `pause`, if given,
    is called between chunks of `CHUNK_SIZE` entries (see `compare_positions`).
    """
    local, broker = snapshot.local_positions, snapshot.broker_positions
    columns = broker if isinstance(local, tuple) else local  # tuples first: a Protocol's isinstance is slow
    if not isinstance(columns, tuple) and isinstance(columns, ColumnarPositions):
        positions = columns.compare_sides(
            local, broker, account_id=snapshot.account_id, timestamp=snapshot.taken_at, config=config, pause=pause
        )
    else:
        positions = compare_positions(
            cast("Sequence[Position]", local),
            cast("Sequence[BrokerPosition]", broker),
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
    """Join both books by symbol and asset type, and classify every position that differs.

    A position (a symbol of one asset type: a stock and an option on it are two) held on
    one side only (a quantity of 0 counts as not held) is missing_local or
    missing_broker; held on both with different quantities, a quantity_mismatch; with
    equal quantities but average costs further apart than `config.cost_tolerance_pct`
    percent of the broker's, a cost_mismatch (never when either side's cost is None:
    unknown). The values are the quantities, or the average costs for a cost_mismatch,
    and None for the side that holds nothing.

    A side that reports one position several times (hedge-mode legs, one entry per venue)
    is netted rather than letting one entry overwrite another: the quantities are
    summed and the average cost is weighted by each entry's *absolute* quantity, so it
    stays within the range of the entries' costs even when long and short legs net out
    (unknown if any entry's cost is). Each netting is listed in `Comparison.netted`.
    Only the positions reported several times are netted: they are found by C-level
    passes over the side, however large it is and however few they are.

    The work is done in pure-Python loops, so a thread running it gives the GIL to
    other threads only every switch interval (5 ms): in a host engine, a million-position
    comparison would delay every other thread by that much, again and again. Given a
    `pause` (such as `os.sched_yield`, which releases the GIL), the comparison calls it
    every `CHUNK_SIZE` entries so that the engine's threads get their turn sooner.

    Returns:
        The discrepancies sorted by symbol (then asset type), and the number of distinct
        positions (symbol and asset type) on either side, flat entries included.
    """
    netted: list[NettedSymbol] = []
    local_by_key = _index(local, "local", netted, pause)
    broker_by_key = _index(broker, "broker", netted, pause)
    netted.sort(key=_netted_order)
    found: list[Found] = []
    _classify_held(local_by_key, broker_by_key, found, config.cost_tolerance_pct, pause)
    broker_only = _classify_broker_only(local_by_key, broker_by_key, found, pause)
    found.sort(key=_by_position)
    discrepancies: list[Discrepancy] = []
    for part in _parts(found, pause):
        discrepancies += checked_discrepancies(part, account_id, timestamp, config)
    return Comparison(
        discrepancies=tuple(discrepancies),
        positions_checked=len(local_by_key) + broker_only,
        netted=tuple(netted),
    )


def _index(
    entries: Sequence[_Side],
    side: Literal["local", "broker"],
    netted: list[NettedSymbol],
    pause: Callable[[], object] | None,
) -> dict[_Key, _Side]:
    """One side by symbol and asset type, the positions it reports more than once netted.

    The side is indexed a chunk at a time (the last entry of a key wins); only if the index
    is shorter than the side are the repeated keys looked for, with C-level passes (an entry
    its key no longer indexes has a repeated key), and only their entries netted.
    """
    by_key: dict[_Key, _Side] = {}
    keys: list[_Key] = []
    whole = pause is None
    for start, stop in _spans(len(entries), pause):
        chunk = entries if whole else entries[start:stop]
        chunk_keys = [
            entry.symbol if entry.asset_type is _STOCK else (entry.symbol, entry.asset_type) for entry in chunk
        ]
        by_key.update(zip(chunk_keys, chunk, strict=True))
        keys += chunk_keys
    if len(by_key) == len(entries):
        return by_key
    repeated: set[_Key] = set()
    index = by_key.__getitem__
    for start, stop in _spans(len(entries), pause):
        chunk_keys = keys[start:stop]
        chunk = entries if whole else entries[start:stop]
        repeated.update(compress(chunk_keys, map(is_not, map(index, chunk_keys), chunk)))
    groups: list[_Side] = []
    is_repeated = repeated.__contains__
    for start, stop in _spans(len(entries), pause):
        chunk = entries if whole else entries[start:stop]
        groups += compress(chunk, map(is_repeated, keys[start:stop]))
    if len(groups) - len(repeated) != len(entries) - len(by_key):
        groups = list(entries)  # one object listed twice: identity cannot tell its repeats apart
    merged, found = net_in_chunks(_parts(groups, pause), side)
    by_key.update(merged)
    netted.extend(found)
    return by_key


def _classify_held(
    local_by_key: dict[_Key, Position],
    broker_by_key: dict[_Key, BrokerPosition],
    found: list[Found],
    cost_tolerance_pct: Decimal,
    pause: Callable[[], object] | None,
) -> None:
    """Classify every position of the local book against the broker's (flat if absent)."""
    broker_get = broker_by_key.get
    append = found.append
    items = iter(local_by_key.items())
    for start, stop in _spans(len(local_by_key), pause):
        for key, held in islice(items, stop - start):
            reported = broker_get(key, _FLAT)
            local_quantity = held.quantity
            broker_quantity = reported.quantity
            if local_quantity == broker_quantity:
                if (
                    local_quantity
                    and held.avg_cost != reported.avg_cost
                    and _beyond_pct(held.avg_cost, reported.avg_cost, cost_tolerance_pct)
                ):
                    append((held.symbol, held.asset_type, _COST, held.avg_cost, reported.avg_cost, None))
            elif not broker_quantity:
                append((held.symbol, held.asset_type, _MISSING_BROKER, local_quantity, None, None))
            elif not local_quantity:
                append((held.symbol, held.asset_type, _MISSING_LOCAL, None, broker_quantity, None))
            else:
                append((held.symbol, held.asset_type, _QUANTITY, local_quantity, broker_quantity, None))


def _beyond_pct(local: Decimal | None, broker: Decimal | None, tolerance_pct: Decimal) -> bool:
    """Both figures known, and abs(local - broker) > abs(broker) * tolerance_pct / 100, exactly."""
    if local is None or broker is None or local == broker:
        return False
    if not tolerance_pct:
        return True
    gap = EXACT.subtract(local, broker).copy_abs()
    return EXACT.multiply(gap, _HUNDRED) > EXACT.multiply(broker.copy_abs(), tolerance_pct)


def _classify_broker_only(
    local_by_key: dict[_Key, Position],
    broker_by_key: dict[_Key, BrokerPosition],
    found: list[Found],
    pause: Callable[[], object] | None,
) -> int:
    """Flag the broker's positions the local book lacks; returns how many there are, flat included.

    The keys the local book lacks are found by a C-level pass (`filterfalse`); only they
    are looked at in Python.
    """
    keys = iter(broker_by_key)
    only: list[_Key] = []
    for start, stop in _spans(len(broker_by_key), pause):
        only += filterfalse(local_by_key.__contains__, islice(keys, stop - start))
    append = found.append
    for start, stop in _spans(len(only), pause):
        for reported in map(broker_by_key.__getitem__, only[start:stop]):
            if reported.quantity:
                append((reported.symbol, reported.asset_type, _MISSING_LOCAL, None, reported.quantity, None))
    return len(only)


def _spans(total: int, pause: Callable[[], object] | None) -> Iterator[tuple[int, int]]:
    """(0, total) without a `pause`; else `CHUNK_SIZE` at a time, pausing after each."""
    if pause is None:
        yield 0, total
        return
    for start in range(0, total, CHUNK_SIZE):
        yield start, start + CHUNK_SIZE
        pause()


def _parts(entries: list[_T], pause: Callable[[], object] | None) -> Iterator[list[_T]]:
    """`entries` in slices of `CHUNK_SIZE` (whole without a `pause`), pausing after each."""
    for start, stop in _spans(len(entries), pause):
        yield entries if pause is None else entries[start:stop]


def compare_accounts(
    local: LocalAccount,
    broker: BrokerAccount,
    *,
    account_id: str,
    timestamp: dt.datetime,
    config: ReconciliationConfig,
) -> tuple[Discrepancy, ...]:
    """Flag cash and equity that differ by more than their tolerances, in that order.

    Cash is a break when abs(local - broker) > `config.cash_tolerance`. When both sides
    give `cash_by_currency`, cash is compared per currency instead, in each currency's
    own units, against `config.cash_tolerance_of(currency)` (a currency one side does
    not list holds 0 there), and each break carries its currency, in alphabetical
    order. Equity is a break when abs(local - broker) > abs(broker equity) *
    `config.equity_tolerance_pct` / 100. The arithmetic is exact whatever the
    magnitudes, so a difference of one cent is seen on any balance.
    """
    found: list[Found] = []
    if local.cash_by_currency is not None and broker.cash_by_currency is not None:
        for currency in sorted(set(local.cash_by_currency) | set(broker.cash_by_currency)):
            held = local.cash_by_currency.get(currency, _ZERO)
            reported = broker.cash_by_currency.get(currency, _ZERO)
            if EXACT.subtract(held, reported).copy_abs() > config.cash_tolerance_of(currency):
                found.append((None, None, DiscrepancyType.CASH_MISMATCH, held, reported, currency))
    elif EXACT.subtract(local.cash, broker.cash).copy_abs() > config.cash_tolerance:
        found.append((None, None, DiscrepancyType.CASH_MISMATCH, local.cash, broker.cash, None))
    if _beyond_pct(local.total_equity, broker.total_equity, config.equity_tolerance_pct):
        found.append((None, None, DiscrepancyType.EQUITY_MISMATCH, local.total_equity, broker.total_equity, None))
    return discrepancies_of(found, account_id, timestamp, config)


def discrepancies_of(
    found: Iterable[Found], account_id: str, timestamp: dt.datetime, config: ReconciliationConfig
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
            asset_type=asset_type,
            currency=currency,
        )
        for symbol, asset_type, kind, local_value, broker_value, currency in found
    )


_SETTERS: tuple[Callable[[Discrepancy, object], None], ...] = tuple(
    Discrepancy.__dict__[field.name].__set__ for field in attrs.fields(Discrepancy)
)
"""Each field's slot, in the fields' order, set without the frozen class's refusal."""


def checked_discrepancies(
    found: Sequence[Found], account_id: str, timestamp: dt.datetime, config: ReconciliationConfig
) -> list[Discrepancy]:
    """What `discrepancies_of` builds, for position breaks whose symbols and values were all
    checked already (by the positions' validators, or the columns' checks): the first is
    built and validated, which checks the account and the time (and converts the time to
    UTC), and the others are built from the same values without validating anything again,
    at a third of the cost (a bad day has 10,000 of them)."""
    built = list(discrepancies_of(found[:1], account_id, timestamp, config))
    if not built or len(found) == 1:
        return built
    first = built[0]
    severity = {kind: config.severity_of(kind) for kind in DiscrepancyType}
    kind_, severity_, symbol_, local_, broker_, time_, account_, asset_, currency_, explanation_ = _SETTERS
    account_id, timestamp = first.account_id, first.timestamp
    new = object.__new__
    append = built.append
    for symbol, asset_type, kind, local_value, broker_value, currency in islice(found, 1, None):
        discrepancy = new(Discrepancy)
        kind_(discrepancy, kind)
        severity_(discrepancy, severity[kind])
        symbol_(discrepancy, symbol)
        local_(discrepancy, local_value)
        broker_(discrepancy, broker_value)
        time_(discrepancy, timestamp)
        account_(discrepancy, account_id)
        asset_(discrepancy, asset_type)
        currency_(discrepancy, currency)
        explanation_(discrepancy, None)
        append(discrepancy)
    return built


_TYPE_ORDER: dict[AssetType | None, str] = {None: "", **{kind: kind.value for kind in AssetType}}
"""An asset type's text, looked up in C (`Enum.value` is a Python-level descriptor)."""


def _by_position(entry: Found) -> tuple[str, str]:
    return (entry[0] or "", _TYPE_ORDER[entry[1]])


class _Netting:
    """One position's entries netted as they come, holding only running sums: exactly what
    netting the whole group gives (sums are exact; the one division, the weighted average
    cost, is made at the end)."""

    __slots__ = ("cost_sum", "entries", "first", "market_value", "quantity", "weight")

    def __init__(self, first: Position | BrokerPosition) -> None:
        self.first = first
        self.entries = 0
        self.quantity = _ZERO
        self.weight = _ZERO
        self.cost_sum: Decimal | None = _ZERO
        self.market_value = _ZERO
        self.add(first)

    def add(self, entry: Position | BrokerPosition) -> None:
        self.entries += 1
        self.quantity = EXACT.add(self.quantity, entry.quantity)
        size = entry.quantity.copy_abs()
        self.weight = EXACT.add(self.weight, size)
        if self.cost_sum is not None:
            self.cost_sum = (
                None if entry.avg_cost is None else EXACT.add(self.cost_sum, EXACT.multiply(size, entry.avg_cost))
            )
        if isinstance(entry, BrokerPosition):
            self.market_value = EXACT.add(self.market_value, entry.market_value)

    def average_cost(self) -> Decimal | None:
        """The absolute-quantity-weighted average cost (None, unknown, if any entry's cost is)."""
        if self.cost_sum is None:
            return None
        if not self.weight:
            return self.first.avg_cost
        average = quotient(self.cost_sum, self.weight)
        if average.as_tuple().exponent < -MAX_DECIMAL_PLACES:  # type: ignore[operator]
            average = average.quantize(_AVERAGE_PLACES, context=ROUNDED)
        return average

    def position(self) -> Position | BrokerPosition:
        """The netted position (the first entry itself when there was one)."""
        first = self.first
        if self.entries == 1:
            return first
        if isinstance(first, BrokerPosition):
            return BrokerPosition(first.symbol, self.quantity, self.average_cost(), self.market_value, first.asset_type)
        return Position(first.symbol, self.quantity, self.average_cost(), first.asset_type)


def net_in_chunks(
    chunks: Iterable[Iterable[_Side]], side: Literal["local", "broker"]
) -> tuple[dict[_Key, _Side], list[NettedSymbol]]:
    """One side's entries, given a chunk at a time, indexed by symbol and asset type, each
    position reported several times netted as `compare_positions` nets it (and listed, in
    the order of `Comparison.netted`). Only one running sum per position is kept, so the
    memory is that of the positions, however many entries they had.
    """
    nettings: dict[_Key, _Netting] = {}
    for chunk in chunks:
        for entry in chunk:
            key = position_key(entry.symbol, entry.asset_type)
            found = nettings.get(key)
            if found is None:
                nettings[key] = _Netting(entry)
            else:
                found.add(entry)
    netted = sorted(
        (
            NettedSymbol(side=side, symbol=each.first.symbol, entries=each.entries, asset_type=each.first.asset_type)
            for each in nettings.values()
            if each.entries > 1
        ),
        key=_netted_order,
    )
    return {key: cast("_Side", each.position()) for key, each in nettings.items()}, netted


def position_key(symbol: str, asset_type: AssetType) -> str | tuple[str, AssetType]:
    """How the comparison identifies a position: a stock by its bare symbol, others with their type."""
    return symbol if asset_type is _STOCK else (symbol, asset_type)


def _netted_order(entry: NettedSymbol) -> tuple[bool, str, str]:
    return (entry.side == "broker", entry.symbol, entry.asset_type.value)
