"""Broker adapters: a `BrokerQuery` over each supported SDK, installed as an extra.

| module | class | extra |
|---|---|---|
| `reconciliation.adapters.ccxt` | `CcxtBroker(exchange, account_id, *, currency)` | `reconciliation[ccxt]` |
| `reconciliation.adapters.alpaca` | `AlpacaBroker(client, account_id)` | `reconciliation[alpaca]` |
| `reconciliation.adapters.ib` | `IBBroker(ib, account_id, *, currency="USD")` | `reconciliation[ib]` |

Each also reads the account's fills (`get_fills(account_id, symbol, since)`: ccxt's
`fetch_my_trades`, Alpaca's FILL activities, TWS executions), which explain a position
break when the engine's book says its fills too.

`venues.VENUES` is the ccxt venue table (one profile per supported venue) and
`read_only` keeps a ccxt exchange to the reads its profile declares. This package imports
no SDK: import the adapter module you use. docs/brokers.md says which SDK call gives
what, and how each adapter handles each SDK's pitfalls.
"""

from __future__ import annotations

from reconciliation.adapters._common import BrokerDataError, InconsistentVenueDataError
from reconciliation.adapters.read_only import WriteRefusedError

__all__ = ["BrokerDataError", "InconsistentVenueDataError", "WriteRefusedError"]

