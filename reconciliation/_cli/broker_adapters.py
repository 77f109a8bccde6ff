"""`[accounts.broker_adapter]`: the broker adapters a TOML file can name, by name.

Each is a module of `reconciliation.adapters` whose frozen attrs `Settings` is the table (less
its `adapter` key): `Settings.broker(account_id)` makes the broker when the service starts, and
`str(settings)` describes it. The module's `SDK` is imported when the file is read, so a missing
extra (`reconciliation[NAME]`) is a configuration error. A new adapter is its module, its extra
and one entry of `ADAPTERS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from reconciliation._domain.protocols import BrokerQuery

__all__ = ["ADAPTERS", "AdapterSettings", "settings_class"]

ADAPTERS: Mapping[str, str] = {
    "ccxt": "reconciliation.adapters.ccxt",
    "alpaca": "reconciliation.adapters.alpaca",
    "ib": "reconciliation.adapters.ib",
}
"""Each adapter's name (also the name of its extra) to its module."""


class AdapterSettings(Protocol):
    def broker(self, account_id: str) -> BrokerQuery: ...


def settings_class(name: str) -> type[AdapterSettings]:
    """The `Settings` of the adapter `name`, once its SDK is imported.

    Raises:
        ImportError: the SDK is not installed; the message says which extra installs it.
    """
    module = importlib.import_module(ADAPTERS[name])
    try:
        importlib.import_module(module.SDK)
    except ImportError as exc:
        msg = f"the {name} adapter needs its SDK: pip install 'reconciliation[{name}]' ({exc})"
        raise ImportError(msg) from None
    settings: type[AdapterSettings] = module.Settings
    return settings
