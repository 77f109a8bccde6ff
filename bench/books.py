"""Synthetic books: a local and a broker side of n positions, clean or with breaks.

Every position has its own Decimal objects (as a real book read from a database or a
broker's JSON has), so memory figures are not flattered by shared constants. Breaks are
spread evenly over the book and rotate through the four position kinds.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position, Snapshot

__all__ = ["ACCOUNT", "NOW", "make_books", "make_snapshot"]

ACCOUNT = "BENCH-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def make_books(n: int, break_pct: float = 0.0) -> tuple[list[Position], list[BrokerPosition]]:
    """`n` symbols on each side (a missing entry is replaced by a flat one elsewhere);
    `break_pct` percent of them differ: quantity, cost, missing locally, missing at the broker."""
    every = round(100 / break_pct) if break_pct else 0
    local: list[Position] = []
    broker: list[BrokerPosition] = []
    for i in range(n):
        symbol = f"SYM{i:08d}"
        quantity = Decimal(i % 997 + 1)
        cost = Decimal(i % 9973 + 100).scaleb(-2)
        value = quantity * cost
        kind = (i // every) % 4 if every and i % every == 0 else -1
        if kind == 0:  # quantity mismatch
            local.append(Position(symbol, quantity, cost))
            broker.append(BrokerPosition(symbol, quantity + 1, cost, value))
        elif kind == 1:  # cost mismatch
            local.append(Position(symbol, quantity, cost))
            broker.append(BrokerPosition(symbol, quantity, cost + Decimal("0.01"), value))
        elif kind == 2:  # missing locally
            broker.append(BrokerPosition(symbol, quantity, cost, value))
        elif kind == 3:  # missing at the broker
            local.append(Position(symbol, quantity, cost))
        else:
            local.append(Position(symbol, quantity, cost))
            broker.append(
                BrokerPosition(symbol, Decimal(i % 997 + 1), Decimal(i % 9973 + 100).scaleb(-2), value)
            )
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
