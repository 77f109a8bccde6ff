"""Synthetic books: a local and a broker side of n positions, clean or with breaks.

Built as a real system builds them: each side is read on its own (the local book from the
engine's store, the broker's from its answer), so the two sides share no objects — every
position has its own symbol string and Decimals, made in that side's own loop — and the
broker answers in its own order (shuffled), not the local book's. Memory and time figures
are therefore not flattered by shared constants, interned strings or matching order.
Breaks are spread evenly over the book and rotate through the four position kinds.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position, Snapshot

__all__ = ["ACCOUNT", "NOW", "SEED", "make_books", "make_snapshot"]

ACCOUNT = "BENCH-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
SEED = 15
"""The broker side's order is the same in every run."""


def _kind(i: int, every: int) -> int:
    """-1 for a matching position, else which break: quantity, cost, missing locally,
    missing at the broker."""
    return (i // every) % 4 if every and i % every == 0 else -1


def _quantity(i: int) -> Decimal:
    return Decimal(i % 997 + 1)


def _cost(i: int) -> Decimal:
    return Decimal(i % 9973 + 100).scaleb(-2)


def make_books(n: int, break_pct: float = 0.0, *, seed: int = SEED) -> tuple[list[Position], list[BrokerPosition]]:
    """`n` symbols on each side (a missing entry is replaced by a flat one elsewhere);
    `break_pct` percent of them differ: quantity, cost, missing locally, missing at the broker.
    The broker side is shuffled with `random.Random(seed)`."""
    every = round(100 / break_pct) if break_pct else 0
    local = [
        Position(f"SYM{i:08d}", _quantity(i), _cost(i)) for i in range(n) if _kind(i, every) != 2
    ]
    broker: list[BrokerPosition] = []
    for i in range(n):
        kind = _kind(i, every)
        if kind == 3:
            continue
        quantity, cost = _quantity(i), _cost(i)
        value = quantity * cost
        if kind == 0:
            quantity += 1
        elif kind == 1:
            cost += Decimal("0.01")
        broker.append(BrokerPosition("".join(("SYM", f"{i:08d}")), quantity, cost, value))
    random.Random(seed).shuffle(broker)
    return local, broker


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
