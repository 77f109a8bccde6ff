"""Synthetic books: a local and a broker side of n positions, clean or with breaks.

Built as a real system builds them: each side is read on its own (the local book from the
engine's store, the broker's from its answer), so the two sides share no objects — every
position has its own symbol string and Decimals, made in that side's own loop — and each
side comes in its own order (shuffled). And shaped as real books are (issue 27): symbols
of mixed shapes and asset types (stocks, OCC options, futures, perpetual swaps), one
position in ten short, and 0.1 % of the broker's positions reported as two hedge-mode legs
the comparison must net. Memory and time figures are therefore not flattered by shared
constants, interned strings, matching order, bare stock symbols or a side without repeats.
Breaks are spread evenly over the book and rotate through the four position kinds.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from reconciliation._domain.models import (
    AssetType,
    BrokerAccount,
    BrokerPosition,
    LocalAccount,
    Position,
    Snapshot,
)

__all__ = ["ACCOUNT", "NOW", "SEED", "make_books", "make_snapshot"]

ACCOUNT = "BENCH-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
SEED = 15
"""Each side's order is the same in every run."""


def _kind(i: int, every: int) -> int:
    """-1 for a matching position, else which break: quantity, cost, missing locally,
    missing at the broker."""
    return (i // every) % 4 if every and i % every == 0 else -1


def _quantity(i: int) -> Decimal:
    return Decimal(i % 997 + 1)


def _cost(i: int) -> Decimal:
    return Decimal(i % 9973 + 100).scaleb(-2)


def make_snapshot(local: list[Position], broker: list[BrokerPosition]) -> Snapshot:
    cash = Decimal("1000000.00")
    return Snapshot(
        account_id=ACCOUNT,
        local_positions=local,
        local_account=LocalAccount(ACCOUNT, cash, cash),
        broker_positions=broker,
        broker_account=BrokerAccount(ACCOUNT, cash, cash, cash, Decimal(0)),
        taken_at=NOW,
    )


_SHAPES = (
    (70, AssetType.STOCK),
    (15, AssetType.OPTION),
    (10, AssetType.FUTURE),
    (5, AssetType.SWAP),
)
"""Of every 100 positions, how many are of each kind (its symbol shaped as such venues write it)."""

_KINDS = [kind for share, kind in _SHAPES for _ in range(share)]
_MONTHS = "FGHJKMNQUVXZ"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _ticker(i: int) -> str:
    """1-5 letters, unique per `i` (base 26, then a class suffix): `AAPL`, `BRK.B`, `Q`."""
    letters = []
    j = i
    while True:
        letters.append(_LETTERS[j % 26])
        j //= 26
        if not j:
            break
    head = "".join(reversed(letters))
    return head if len(head) <= 4 else f"{head[:4]}.{head[4:]}"


def _symbol(i: int, kind: AssetType) -> str:
    """A symbol as its venue spells it: OCC option, future with month code, perpetual swap."""
    ticker = _ticker(i)
    if kind is AssetType.OPTION:
        return f"{ticker:<6}26{i % 12 + 1:02d}{i % 28 + 1:02d}{'CP'[i % 2]}{(i % 5000 + 1) * 1000:08d}"
    if kind is AssetType.FUTURE:
        return f"{ticker}{_MONTHS[i % 12]}{26 + i % 3}"
    if kind is AssetType.SWAP:
        return f"{ticker}/USDT:USDT"
    return ticker


def _signed_quantity(i: int) -> Decimal:
    """One position in ten is short."""
    quantity = _quantity(i)
    return -quantity if i % 10 == 3 else quantity


def make_books(
    n: int, break_pct: float = 0.0, *, hedged_pct: float = 0.1, seed: int = SEED
) -> tuple[list[Position], list[BrokerPosition]]:
    """Books as production has them: mixed symbol shapes and asset types (stocks, OCC
    options, futures, perpetual swaps), 10 % shorts, and `hedged_pct` percent of the
    broker's positions reported as two hedge-mode legs (a long and a short one, same cost)
    that net to the local position. Breaks as `make_books`. Each side is built by its own
    loop, so they share no objects, and each is shuffled with its own seed."""
    every = round(100 / break_pct) if break_pct else 0
    hedge_every = round(100 / hedged_pct) if hedged_pct else 0
    kinds = [_KINDS[(i * 37) % 100] for i in range(n)]
    local = [
        Position(_symbol(i, kinds[i]), _signed_quantity(i), _cost(i), kinds[i])
        for i in range(n)
        if _kind(i, every) != 2
    ]
    broker: list[BrokerPosition] = []
    for i in range(n):
        kind = _kind(i, every)
        if kind == 3:
            continue
        quantity, cost = _signed_quantity(i), _cost(i)
        if kind == 0:
            quantity += 1
        elif kind == 1:
            cost += Decimal("0.01")
        symbol = _symbol(i, kinds[i])
        if hedge_every and i % hedge_every == 7:
            short = Decimal(i % 50 + 1)
            long = quantity + short
            broker.append(BrokerPosition(symbol, long, cost, long * cost, kinds[i]))
            broker.append(BrokerPosition(symbol, -short, cost, -short * cost, kinds[i]))
        else:
            broker.append(BrokerPosition(symbol, quantity, cost, quantity * cost, kinds[i]))
    random.Random(seed).shuffle(local)
    random.Random(seed + 1).shuffle(broker)
    return local, broker
