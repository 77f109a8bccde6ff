"""One account to reconcile: how (its config) and from where (its two books)."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from reconciliation._domain.models import ReconciliationConfig
from reconciliation._domain.protocols import BrokerQuery, PortfolioManager

__all__ = ["Account", "check_books"]

logger = logging.getLogger(__name__)


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
    check_books(instance.portfolio, instance.broker)


@attrs.frozen
class Account:
    """An account, its local book (`portfolio`) and its broker's view (`broker`)."""

    config: ReconciliationConfig = attrs.field(validator=attrs.validators.instance_of(ReconciliationConfig))
    portfolio: PortfolioManager = attrs.field(eq=False)
    broker: BrokerQuery = attrs.field(eq=False, validator=_books)

    @property
    def account_id(self) -> str:
        return self.config.account_id
