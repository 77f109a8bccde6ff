"""Paper trading: both sides of an account in memory, booked from the same fills.

`InMemoryPortfolio` is a local book (a `PortfolioManager`), `PaperBroker` a venue (a
`BrokerQuery`). `paper_broker` and `paper_portfolio` are factories for
`reconciliation run` (docs/example-config.toml).
"""

from __future__ import annotations

from decimal import Decimal

from reconciliation.paper._booking import (
    Book,
    BookState,
    CashAdjustment,
    Holding,
    StaleCorrectionError,
    WrongAccountError,
    correct_holding,
)
from reconciliation.paper._books import InMemoryPortfolio, PaperBroker

__all__ = [
    "OPENING_CASH",
    "Book",
    "BookState",
    "CashAdjustment",
    "Holding",
    "InMemoryPortfolio",
    "PaperBroker",
    "StaleCorrectionError",
    "WrongAccountError",
    "correct_holding",
    "paper_broker",
    "paper_portfolio",
]

OPENING_CASH = Decimal(100_000)


def paper_broker(account_id: str) -> PaperBroker:
    """A paper broker account holding 100,000 in cash and nothing else."""
    return PaperBroker(account_id, OPENING_CASH)


def paper_portfolio(account_id: str) -> InMemoryPortfolio:
    """An empty local book with 100,000 in cash: it reconciles clean with `paper_broker`."""
    return InMemoryPortfolio(account_id, OPENING_CASH)
