"""Book-keeping of fills into holdings, cash and realised P&L: one account's ledger.

The in-memory portfolio (the local book) and the paper broker (the venue's book) both
keep their accounts with `Book`, so the same fills booked into both reconcile clean and
a fill booked into one only shows exactly the break a trader expects.

Rules, for a signed position (short < 0):

- A fill that adds to a position (or opens one) averages its cost, weighted by
  quantity; a fill that reduces it keeps the average cost and realises
  (fill price - average cost) * closed quantity * multiplier, signed by the side.
  A fill that crosses zero realises on the closed part and opens the rest at the fill
  price. A position back to 0 is removed.
- Cash: a STOCK or OPTION fill pays (buy) or receives (sell) its notional,
  quantity * price * multiplier. A FUTURE fill exchanges no notional: cash moves only by
  the P&L it realises. Every fill's commission is taken from cash.
- Valuation: a holding is marked at the price last set for its symbol, or at its own
  average cost until one is set. Equity is cash plus the market value of stocks and
  options plus the unrealised P&L of futures (their notional never left cash).

Sums and products are exact whatever the magnitudes; only an average cost, a division,
is rounded, to 34 significant digits.
"""

from __future__ import annotations

import collections
import decimal
import functools
import logging
import threading
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.fills import Fill, fill_of
from reconciliation._domain.models import AssetType, OrderFill
from reconciliation._domain.values import EXACT, exact_decimal, finite_decimal, non_empty_text, quotient

if TYPE_CHECKING:
    import datetime as dt

    from reconciliation._domain.correction import Correction

__all__ = [
    "Book",
    "BookState",
    "Booking",
    "CashAdjustment",
    "Holding",
    "Mark",
    "StaleCorrectionError",
    "WrongAccountError",
    "book_fill",
    "correct_holding",
]

logger = logging.getLogger(__name__)

_ZERO = Decimal(0)
FILLS_KEPT = 100_000
"""The fills a paper book remembers, to say which it booked (`get_fills`)."""


class WrongAccountError(LookupError):
    """A book was asked about, or given a fill for, an account it does not keep."""


class StaleCorrectionError(ValueError):
    """A correction was derived from a figure the book no longer holds: it moved since."""


def _not_zero(_instance: object, field: attrs.Attribute[Any], value: Decimal) -> None:
    if value == 0:
        msg = f"{field.name} must not be 0: a flat position is no holding"
        raise ValueError(msg)


@attrs.frozen
class Holding:
    """An open position in one instrument: a signed quantity and what it cost on average."""

    symbol: str = attrs.field(validator=non_empty_text)
    quantity: Decimal = attrs.field(converter=exact_decimal, validator=[finite_decimal, _not_zero])
    avg_cost: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    asset_type: AssetType = attrs.field(
        default=AssetType.STOCK, validator=attrs.validators.instance_of(AssetType)
    )
    multiplier: Decimal = attrs.field(default=Decimal(1), converter=exact_decimal, validator=finite_decimal)


@attrs.frozen
class Booking:
    """What one fill does to a book: the holding after it, and the money it moves."""

    holding: Holding | None
    """None when the fill closed the position."""
    realised_pnl: Decimal
    """Trading P&L on the part the fill closed, before commission."""
    cash_change: Decimal
    """Notional (stocks, options) or realised P&L (futures), less commission."""


def book_fill(holding: Holding | None, fill: OrderFill) -> Booking:
    """Book `fill` into `holding` (None when there is no position in its symbol yet).

    Raises:
        ValueError: the fill's asset type or multiplier contradicts the holding's.
    """
    with decimal.localcontext(EXACT):
        if holding is None:
            return _booking(
                fill,
                Holding(fill.symbol, fill.quantity, fill.price, fill.asset_type, fill.multiplier),
                _ZERO,
            )
        if (holding.asset_type, holding.multiplier) != (fill.asset_type, fill.multiplier):
            msg = (
                f"fill {fill.fill_id} for {fill.symbol} is a {fill.asset_type.value} with multiplier "
                f"{fill.multiplier}, but the position is a {holding.asset_type.value} with multiplier "
                f"{holding.multiplier}"
            )
            raise ValueError(msg)
        before = holding.quantity
        after = before + fill.quantity
        if (before > 0) == (fill.quantity > 0):
            weighted = abs(before) * holding.avg_cost + abs(fill.quantity) * fill.price
            added = attrs.evolve(holding, quantity=after, avg_cost=quotient(weighted, abs(after)))
            return _booking(fill, added, _ZERO)
        closed = min(abs(before), abs(fill.quantity))
        realised = closed * (fill.price - holding.avg_cost) * holding.multiplier
        if before < 0:
            realised = -realised
        if after == 0:
            return _booking(fill, None, realised)
        if (after > 0) == (before > 0):
            return _booking(fill, attrs.evolve(holding, quantity=after), realised)
        return _booking(fill, attrs.evolve(holding, quantity=after, avg_cost=fill.price), realised)


def correct_holding(holding: Holding | None, correction: Correction) -> Holding | None:
    """The holding after a position or cost correction (None: no position any more).

    A position correction is its synthetic fill, booked by `book_fill` into the holding
    (its own asset type and multiplier; a new one has the correction's, multiplier 1),
    priced at the correction's price or, when it has none (a close whose cost is
    unknown), at the holding's average cost; then the position takes the broker's
    average cost, when the correction gives it. A cost correction sets the average
    cost. Neither moves cash nor realises P&L: cash has its own correction.

    Raises:
        ValueError: a cost correction without a holding, a fill without a price, or one
            that contradicts the holding's asset type.
    """
    if correction.quantity is None:
        if holding is None or correction.avg_cost is None:
            msg = f"there is no position in {correction.subject} to set the average cost of"
            raise ValueError(msg)
        return attrs.evolve(holding, avg_cost=correction.avg_cost)
    price = correction.price if correction.price is not None else None if holding is None else holding.avg_cost
    if price is None:
        msg = f"a correction opening {correction.subject} needs a price"
        raise ValueError(msg)
    fill = OrderFill(
        order_id=f"correction:{correction.break_id}",
        fill_id=str(correction.correction_id),
        account_id=correction.account_id,
        symbol=correction.symbol or "",
        quantity=correction.quantity,
        price=price,
        timestamp=correction.observed_at,
        asset_type=holding.asset_type if holding is not None else correction.asset_type or AssetType.STOCK,
        multiplier=holding.multiplier if holding is not None else Decimal(1),
    )
    after = book_fill(holding, fill).holding
    if after is None or correction.avg_cost is None:
        return after
    return attrs.evolve(after, avg_cost=correction.avg_cost)


def _booking(fill: OrderFill, holding: Holding | None, realised: Decimal) -> Booking:
    if fill.asset_type is AssetType.FUTURE:
        moved = realised
    else:
        moved = -(fill.quantity * fill.price * fill.multiplier)
    return Booking(holding=holding, realised_pnl=realised, cash_change=moved - fill.commission)


@attrs.frozen
class Mark:
    """The price a symbol's holding is valued at."""

    symbol: str = attrs.field(validator=non_empty_text)
    price: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)


@attrs.frozen
class CashAdjustment:
    """Cash that moved without a fill: a fee, a dividend, interest, a transfer."""

    amount: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    reason: str = attrs.field(validator=non_empty_text)


@attrs.frozen
class BookState:
    """A consistent copy of a book, taken at one moment, and its valuation."""

    account_id: str
    cash: Decimal
    realised_pnl: Decimal
    holdings: tuple[Holding, ...]
    """Open positions, sorted by symbol."""
    marks: Mapping[str, Decimal]

    def mark(self, holding: Holding) -> Decimal:
        """The price last set for the holding's symbol, else its average cost."""
        return self.marks.get(holding.symbol, holding.avg_cost)

    def market_value(self, holding: Holding) -> Decimal:
        """quantity * mark * multiplier: negative for a short."""
        return EXACT.multiply(EXACT.multiply(holding.quantity, self.mark(holding)), holding.multiplier)

    def unrealised_pnl(self, holding: Holding) -> Decimal:
        with decimal.localcontext(EXACT):
            return holding.quantity * (self.mark(holding) - holding.avg_cost) * holding.multiplier

    @property
    def total_equity(self) -> Decimal:
        """Cash, plus stocks and options at market value, plus futures' unrealised P&L."""
        worth = (
            self.unrealised_pnl(held) if held.asset_type is AssetType.FUTURE else self.market_value(held)
            for held in self.holdings
        )
        return functools.reduce(EXACT.add, worth, self.cash)


@attrs.define(eq=False)
class Book:
    """The holdings, cash and realised P&L of one account, changed by fills.

    Thread-safe: fills may be booked from one thread while another reads `state()`.
    """

    account_id: str = attrs.field(validator=non_empty_text, on_setattr=attrs.setters.frozen)
    _cash: Decimal = attrs.field(converter=exact_decimal, validator=finite_decimal)
    _realised_pnl: Decimal = attrs.field(default=_ZERO, init=False)
    _holdings: dict[str, Holding] = attrs.field(factory=dict, init=False, repr=False)
    _marks: dict[str, Decimal] = attrs.field(factory=dict, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _fills: collections.deque[OrderFill] = attrs.field(
        factory=lambda: collections.deque(maxlen=FILLS_KEPT), init=False, repr=False
    )

    def apply_fill(self, fill: OrderFill) -> None:
        """Book an execution into positions, cash and realised P&L.

        Raises:
            WrongAccountError: the fill belongs to another account.
            ValueError: the fill contradicts the held instrument's type or multiplier.
        """
        if fill.account_id != self.account_id:
            msg = (
                f"{type(self).__name__} keeps account {self.account_id!r}; "
                f"refused fill {fill.fill_id} for account {fill.account_id!r}"
            )
            raise WrongAccountError(msg)
        with self._lock:
            booking = book_fill(self._holdings.get(fill.symbol), fill)
            if booking.holding is None:
                del self._holdings[fill.symbol]
            else:
                self._holdings[fill.symbol] = booking.holding
            self._cash = EXACT.add(self._cash, booking.cash_change)
            self._realised_pnl = EXACT.add(self._realised_pnl, booking.realised_pnl)
            self._fills.append(fill)

    def fills(self, symbol: str, since: dt.datetime) -> list[Fill]:
        """The fills booked in `symbol` at or after `since`, oldest first (the last `FILLS_KEPT`)."""
        with self._lock:
            return [fill_of(fill) for fill in self._fills if fill.symbol == symbol and fill.timestamp >= since]

    def set_price(self, symbol: str, price: Decimal | int) -> None:
        """Mark `symbol` at `price` from now on; a symbol never marked is valued at its cost."""
        mark = Mark(symbol, price)
        with self._lock:
            self._marks[mark.symbol] = mark.price

    def adjust_cash(self, amount: Decimal | int, reason: str) -> CashAdjustment:
        """Move cash without a fill (a fee < 0, a dividend > 0) and say why."""
        adjustment = CashAdjustment(amount, reason)
        with self._lock:
            self._cash = EXACT.add(self._cash, adjustment.amount)
        logger.info(
            "%s %s: cash adjusted by %s (%s)",
            type(self).__name__,
            self.account_id,
            adjustment.amount,
            adjustment.reason,
        )
        return adjustment

    def state(self) -> BookState:
        """Everything the book holds, copied at one moment."""
        with self._lock:
            holdings = tuple(self._holdings[symbol] for symbol in sorted(self._holdings))
            return BookState(
                account_id=self.account_id,
                cash=self._cash,
                realised_pnl=self._realised_pnl,
                holdings=holdings,
                marks=MappingProxyType(dict(self._marks)),
            )

    @property
    def cash(self) -> Decimal:
        return self._cash

    @property
    def realised_pnl(self) -> Decimal:
        """Trading P&L realised by closing fills so far, before commissions."""
        return self._realised_pnl

    def _check_account(self, asked: str) -> None:
        if asked != self.account_id:
            msg = f"{type(self).__name__} keeps account {self.account_id!r}, not {asked!r}"
            raise WrongAccountError(msg)
