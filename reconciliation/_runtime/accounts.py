"""One account to reconcile: how (its config) and from where (its two books)."""

from __future__ import annotations

from typing import Any

import attrs

from reconciliation._domain.models import ReconciliationConfig
from reconciliation._domain.protocols import BrokerQuery, CorrectableBook, PortfolioManager

__all__ = ["Account", "check_books"]


def check_books(portfolio: object, broker: object) -> None:
    """Refuse what cannot be a book, naming the argument and what it needs.

    Raises:
        TypeError: `portfolio` is not a `PortfolioManager` or `broker` not a `BrokerQuery`.
    """
    if not isinstance(portfolio, PortfolioManager):
        msg = f"portfolio must implement PortfolioManager (get_positions, get_account), not {portfolio!r:.200}"
        raise TypeError(msg)
    if not isinstance(broker, BrokerQuery):
        msg = f"broker_query must implement BrokerQuery (get_positions, get_account), not {broker!r:.200}"
        raise TypeError(msg)


def _books(instance: Account, _field: attrs.Attribute[Any], _value: object) -> None:
    """Refuse books that cannot be this account's.

    Raises:
        TypeError: not books (see `check_books`), or `CorrectionPolicy(mode="apply")` for a
            portfolio without `apply_correction`, naming both ways out.
        ValueError: the broker's `currency` (an adapter's, when it has one) is the account's,
            and its config names no cash tolerance in it: the default `cash_tolerance` is
            1.00 USD, which means nothing in BTC or EUR.
    """
    config, portfolio = instance.config, instance.portfolio
    check_books(portfolio, instance.broker)
    policy = config.correction
    if policy is not None and policy.mode == "apply" and not isinstance(portfolio, CorrectableBook):
        msg = (
            f"account {config.account_id}: correction mode 'apply' needs a portfolio that implements "
            f"apply_correction(correction) (reconciliation.CorrectableBook); {type(portfolio).__name__} does not. "
            "Implement it, or use CorrectionPolicy(mode='propose') to only propose corrections"
        )
        raise TypeError(msg)
    currency = getattr(instance.broker, "currency", None)
    if isinstance(currency, str) and not config.has_cash_tolerance_in(currency):
        msg = (
            f"account {config.account_id} is reconciled in {currency} (its broker's currency), but its cash "
            f"tolerance is the default {config.cash_tolerance}, which is in USD: set cash_tolerance (in "
            f"{currency}; it then applies to every currency of the account) or cash_tolerance_by_currency.{currency}"
        )
        raise ValueError(msg)


@attrs.frozen
class Account:
    """An account, its local book (`portfolio`) and its broker's view (`broker`).

    .. versionadded:: 0.1
    """

    config: ReconciliationConfig = attrs.field(validator=attrs.validators.instance_of(ReconciliationConfig))
    portfolio: PortfolioManager = attrs.field(eq=False)
    broker: BrokerQuery = attrs.field(eq=False, validator=_books)

    @property
    def account_id(self) -> str:
        return self.config.account_id
