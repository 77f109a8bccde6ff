"""What every adapter's `get_fills` shares: a venue's execution made a `Fill` (signed by its side,
its time in UTC, any bad figure refused naming the venue's row), and each execution once.

A venue may list an execution twice (pages that overlap, a retried request): the same
execution with the same figures is kept once; the same id with other figures is
inconsistent venue data, and the read fails naming both rather than explain a break with
a fill it cannot trust.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from reconciliation._domain.error_text import describe_error
from reconciliation._domain.fills import Fill
from reconciliation.adapters._common import BrokerDataError, InconsistentVenueDataError

if TYPE_CHECKING:
    from reconciliation._domain.models import AssetType

__all__ = ["DEFAULT_MAX_FILLS", "Executions", "execution", "from_milliseconds", "signed"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_FILLS = 1_000
"""The most executions an adapter reads for one symbol and window (`ExplanationPolicy.max_fills`'s default)."""

_SIDES = {"buy": 1, "bot": 1, "sell": -1, "sld": -1}
"""A venue's side of an execution, in lower case (IB says BOT and SLD), to its sign."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def signed(side: object, quantity: Decimal, where: str) -> Decimal:
    """`quantity` (the venue's unsigned size) signed by `side`: a buy > 0, a sell < 0.

    Raises:
        BrokerDataError: the side is neither a buy nor a sell, or the size is not positive.
    """
    sign = _SIDES.get(side.lower()) if isinstance(side, str) else None
    if sign is None:
        msg = f"{where} has side {side!r}, neither a buy nor a sell"
        raise BrokerDataError(msg)
    if quantity <= 0:
        msg = f"{where} has the size {quantity}: an execution's size is positive, its side gives the sign"
        raise BrokerDataError(msg)
    return quantity.copy_abs().copy_sign(Decimal(sign))


def from_milliseconds(value: object, where: str) -> dt.datetime:
    """A venue's time in milliseconds since the epoch (an int or its text), in UTC.

    Raises:
        BrokerDataError: missing, or not a whole number of milliseconds.
    """
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{where} has the time {value!r}, not milliseconds since 1970"
        raise BrokerDataError(msg)
    return _EPOCH + dt.timedelta(milliseconds=value)


def execution(
    where: str,
    *,
    fill_id: object,
    order_id: object,
    position: tuple[str, AssetType],
    quantity: Decimal,
    price: Decimal,
    timestamp: dt.datetime,
    fee: Decimal,
) -> Fill:
    """One execution in `position` (symbol, asset type) as a `Fill`, its ids as text.

    Raises:
        BrokerDataError: an id is missing, or a figure the model refuses (the message names the row).
    """
    for name, value in (("execution id", fill_id), ("order id", order_id)):
        if value is None or value == "":
            msg = f"{where} has no {name}"
            raise BrokerDataError(msg)
    try:
        symbol, asset_type = position
        return Fill(str(fill_id), str(order_id), symbol, quantity, price, timestamp, asset_type, fee=fee)
    except (TypeError, ValueError) as error:
        msg = f"{where}: {describe_error(error)}"
        raise BrokerDataError(msg) from None


class Executions:
    """The fills of one read, each execution once, in the order first given."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._by_id: dict[str, Fill] = {}

    def add(self, fill: Fill) -> bool:
        """Keep `fill`; False if this very execution is already kept.

        Raises:
            InconsistentVenueDataError: its id is kept with other figures.
        """
        kept = self._by_id.get(fill.fill_id)
        if kept is None:
            self._by_id[fill.fill_id] = fill
            return True
        if kept == fill:
            return False
        msg = (
            f"inconsistent venue data: {self._where}: execution {fill.fill_id} is given twice, as "
            f"{kept.describe()} (order {kept.order_id}) and as {fill.describe()} (order {fill.order_id}); "
            "its fills are not used rather than explain a break with one that cannot be trusted"
        )
        raise InconsistentVenueDataError(msg)

    def __len__(self) -> int:
        return len(self._by_id)

    def oldest_first(self, limit: int) -> list[Fill]:
        """At most `limit` fills, oldest first; a WARNING when more were read."""
        fills = sorted(self._by_id.values(), key=lambda fill: fill.timestamp)
        if len(fills) > limit:
            logger.warning("%s: %d executions read, the first %d are used", self._where, len(fills), limit)
        return fills[:limit]
