"""Both sides of a paper-trading account, in memory: the local book and a paper broker.

`InMemoryPortfolio` is a `PortfolioManager`, `PaperBroker` a `BrokerQuery`; both book
fills with `reconciliation.paper.Book`, so booking the same fills into each leaves
them reconciling clean, and booking a fill (or a fee) into one only makes the break a
real engine would show. Every method is thread-safe. `PaperBroker`'s queries are
`async`, as design.md's `BrokerQuery` declares a broker's; its booking methods are plain.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import attrs

from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position
from reconciliation._domain.values import exact_decimal, finite_decimal
from reconciliation.paper._booking import Book

__all__ = ["InMemoryPortfolio", "PaperBroker"]

_EXACT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.InvalidOperation]
)
_DIVISION = decimal.Context(prec=34)


@attrs.define(eq=False)
class InMemoryPortfolio(Book):
    """The engine's own book of one account, kept from the fills it is given.

    `apply_fill(fill)` books an `OrderFill`; `set_price(symbol, price)` marks a symbol,
    which moves `total_equity` (an unmarked symbol is valued at its average cost).
    Asking for another account raises `WrongAccountError` (a `LookupError`).
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

    async def get_account(self, account_id: str) -> BrokerAccount:
        self._check_account(account_id)
        state = self.state()
        equity = state.total_equity
        exposure = Decimal(0)
        for holding in state.holdings:
            exposure = _EXACT.add(exposure, state.market_value(holding).copy_abs())
        margin_used = _EXACT.multiply(exposure, self.margin_rate)
        free = max(_EXACT.subtract(equity, margin_used), Decimal(0))
        return BrokerAccount(
            account_id,
            cash=state.cash,
            buying_power=_DIVISION.divide(free, self.margin_rate),
            total_equity=equity,
            margin_used=margin_used,
        )
