"""Both sides of a paper-trading account, in memory: the local book and a paper broker.

`InMemoryPortfolio` is a `PortfolioManager`, `PaperBroker` a `BrokerQuery`; both book
fills with `reconciliation.paper.Book`, so booking the same fills into each leaves
them reconciling clean, and booking a fill (or a fee) into one only makes the break a
real engine would show. Every method is thread-safe. `PaperBroker`'s queries are
`async`, as design.md's `BrokerQuery` declares a broker's; its booking methods are plain.
"""

from __future__ import annotations

import functools
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.models import (
    BrokerAccount,
    BrokerPosition,
    DiscrepancyType,
    LocalAccount,
    OrderFill,
    Position,
)
from reconciliation._domain.values import EXACT, exact_decimal, finite_decimal, quotient
from reconciliation.paper._booking import Book, Holding, StaleCorrectionError, book_fill, correct_holding

if TYPE_CHECKING:
    import datetime as dt

    from reconciliation._domain.correction import Correction
    from reconciliation._domain.fills import Fill

__all__ = ["InMemoryPortfolio", "PaperBroker"]

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class InMemoryPortfolio(Book):
    """The engine's own book of one account, kept from the fills it is given.

    `apply_fill(fill)` books an `OrderFill`; `set_price(symbol, price)` marks a symbol,
    which moves `total_equity` (an unmarked symbol is valued at its average cost).
    Asking for another account raises `WrongAccountError` (a `LookupError`).

    .. versionadded:: 0.1
    """

    def get_positions(self, account_id: str) -> list[Position]:
        """Open positions, sorted by symbol."""
        self._check_account(account_id)
        return [
            Position(holding.symbol, holding.quantity, holding.avg_cost, holding.asset_type)
            for holding in self.state().holdings
        ]

    def get_account(self, account_id: str) -> LocalAccount:
        self._check_account(account_id)
        state = self.state()
        return LocalAccount(account_id, cash=state.cash, total_equity=state.total_equity)

    def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        """The fills booked in `symbol` since `since`, oldest first: what explains a break."""
        self._check_account(account_id)
        return self.fills(symbol, since)

    def apply_correction(self, correction: Correction) -> None:
        """Bring one figure in line with the broker's (a `CorrectableBook`).

        A position is corrected by booking the broker's fills it missed, when the break's
        fills explain it exactly, else by its synthetic fill; a cost by the broker's average
        cost (see `reconciliation.paper.correct_holding`); neither moves cash. Cash by the
        difference. Nothing changes unless the book still holds the correction's
        `local_value`.

        Raises:
            WrongAccountError: the correction is for another account.
            StaleCorrectionError: the figure moved since the run that derived the correction.
            ValueError: a per-currency cash correction (this book keeps one cash balance),
                or a fill that contradicts the held instrument.
        """
        self._check_account(correction.account_id)
        if correction.type is DiscrepancyType.CASH_MISMATCH:
            self._correct_cash(correction)
        else:
            self._correct_position(correction)
        logger.info(
            "%s %s corrected %s of run %s: %s",
            type(self).__name__,
            self.account_id,
            correction.type.value,
            correction.run_id,
            correction.describe(),
        )

    def _correct_cash(self, correction: Correction) -> None:
        if correction.currency is not None or correction.cash is None:
            msg = f"{type(self).__name__} keeps one cash balance; it cannot correct {correction.currency} cash"
            raise ValueError(msg)
        with self._lock:
            if self._cash != correction.local_value:
                msg = f"cash is {self._cash}, not the {correction.local_value} the correction was derived from"
                raise StaleCorrectionError(msg)
            self._cash = EXACT.add(self._cash, correction.cash)

    def _correct_position(self, correction: Correction) -> None:
        symbol = correction.symbol or ""
        with self._lock:
            holding = self._holdings.get(symbol)
            if holding is not None and holding.asset_type is not correction.asset_type:
                msg = f"{symbol} is held as a {holding.asset_type.value}, not a {correction.subject}"
                raise ValueError(msg)
            held: Decimal | None
            if correction.type is DiscrepancyType.COST_MISMATCH:
                what, held, derived_from = "the average cost", None if holding is None else holding.avg_cost, correction.local_value
            else:
                what, held = "the quantity", Decimal(0) if holding is None else holding.quantity
                derived_from = Decimal(0) if correction.local_value is None else correction.local_value
            if held != derived_from:
                msg = f"{what} of {correction.subject} is {held}, not the {derived_from} the correction was derived from"
                raise StaleCorrectionError(msg)
            after = self._book_fills(holding, correction) if correction.fills else correct_holding(holding, correction)
            if after is None:
                self._holdings.pop(symbol, None)
            else:
                self._holdings[symbol] = after

    def _book_fills(self, holding: Holding | None, correction: Correction) -> Holding | None:
        """Book the broker's fills the engine missed into the position (their prices give its
        cost), and remember them; like every position correction, cash does not move."""
        for fill in correction.fills:
            booked = OrderFill(
                fill.order_id,
                fill.fill_id,
                self.account_id,
                fill.symbol,
                fill.quantity,
                fill.price,
                fill.timestamp,
                commission=fill.fee,
                asset_type=fill.asset_type,
                multiplier=holding.multiplier if holding is not None else Decimal(1),
            )
            holding = book_fill(holding, booked).holding
            self._fills.append(booked)
        return holding


def _margin_rate(_instance: object, field: attrs.Attribute[Any], value: Decimal) -> None:
    if not 0 < value <= 1:
        msg = f"{field.name} must be more than 0 and at most 1, got {value}"
        raise ValueError(msg)


@attrs.define(eq=False)
class PaperBroker(Book):
    """A broker for paper trading: books fills, marks positions, reports like a venue.

    Reports as a broker does: flat positions are omitted, and `market_value` is
    quantity * mark * multiplier for every asset type.

    Balances follow a deliberately simple margin model:

    - `cash`: the settled cash (stocks and options moved their notional; futures only
      their realised P&L; commissions and `adjust_cash` amounts are in it);
    - `total_equity` (net liquidation value): cash + market value of stocks and options
      + unrealised P&L of futures;
    - `margin_used`: sum of abs(market value) over all positions, times `margin_rate`;
    - `buying_power`: max(0, total_equity - margin_used) / margin_rate, what the free
      equity could hold at that rate.

    With the default `margin_rate` of 0.5 (Reg T style), 10,000 of equity and nothing
    held gives 20,000 of buying power.

    .. versionadded:: 0.1
    """

    margin_rate: Decimal = attrs.field(
        default=Decimal("0.5"),
        kw_only=True,
        converter=exact_decimal,
        validator=[finite_decimal, _margin_rate],
        on_setattr=attrs.setters.frozen,
    )

    async def get_positions(self, account_id: str) -> list[BrokerPosition]:
        """Open positions, sorted by symbol; flat ones are not reported."""
        self._check_account(account_id)
        state = self.state()
        return [
            BrokerPosition(
                holding.symbol,
                holding.quantity,
                holding.avg_cost,
                market_value=state.market_value(holding),
                asset_type=holding.asset_type,
            )
            for holding in state.holdings
        ]

    async def get_fills(self, account_id: str, symbol: str, since: dt.datetime) -> list[Fill]:
        """The executions in `symbol` since `since`, oldest first, as a broker's trade history gives them."""
        self._check_account(account_id)
        return self.fills(symbol, since)

    async def get_account(self, account_id: str) -> BrokerAccount:
        self._check_account(account_id)
        state = self.state()
        equity = state.total_equity
        exposures = (state.market_value(holding).copy_abs() for holding in state.holdings)
        margin_used = EXACT.multiply(functools.reduce(EXACT.add, exposures, Decimal(0)), self.margin_rate)
        free = max(EXACT.subtract(equity, margin_used), Decimal(0))
        return BrokerAccount(
            account_id,
            cash=state.cash,
            buying_power=quotient(free, self.margin_rate),
            total_equity=equity,
            margin_used=margin_used,
        )
