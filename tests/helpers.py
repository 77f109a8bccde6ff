"""Shared test helpers: fills to book, and waiting for a condition that another thread makes true."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable
from decimal import Decimal

from reconciliation._domain.models import AssetType, OrderFill


def eventually(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail the test with `what` if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"{what} did not happen within {timeout} s"
            raise AssertionError(msg)
        time.sleep(0.005)


_fill_ids = itertools.count(1)


def fill(
    symbol: str,
    quantity: Decimal | int | str,
    price: Decimal | int | str,
    *,
    commission: Decimal | int | str = 0,
    asset_type: AssetType = AssetType.STOCK,
    multiplier: Decimal | int = 1,
    account_id: str = "ACC-1",
) -> OrderFill:
    """A fill of ACC-1 with fresh order and fill ids; strings are read as exact decimals."""
    n = next(_fill_ids)
    return OrderFill(
        order_id=f"ORD-{n}",
        fill_id=f"FILL-{n}",
        account_id=account_id,
        symbol=symbol,
        quantity=Decimal(quantity),
        price=Decimal(price),
        timestamp=dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC),
        commission=Decimal(commission),
        asset_type=asset_type,
        multiplier=Decimal(multiplier),
    )
