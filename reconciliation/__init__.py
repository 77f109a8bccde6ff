"""Keeps a trading engine honest: compares its book with the broker's, raises every break.

The package root exports exactly the public contract (docs/contract in ../shared/spec).
"""

from __future__ import annotations

from reconciliation.messages import ReconcileRequest
from reconciliation.models import (
    DEFAULT_SEVERITY,
    AgeingPolicy,
    AssetType,
    BrokerAccount,
    BrokerPosition,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    LocalAccount,
    OrderFill,
    Position,
    ReconciliationConfig,
    ReconciliationResult,
)
from reconciliation.paper import InMemoryPortfolio, PaperBroker
from reconciliation.protocols import BrokerQuery, PortfolioManager
from reconciliation.service import ReconciliationService

__all__ = [
    "DEFAULT_SEVERITY",
    "AgeingPolicy",
    "AssetType",
    "BrokerAccount",
    "BrokerPosition",
    "BrokerQuery",
    "Discrepancy",
    "DiscrepancySeverity",
    "DiscrepancyType",
    "InMemoryPortfolio",
    "LocalAccount",
    "OrderFill",
    "PaperBroker",
    "PortfolioManager",
    "Position",
    "ReconcileRequest",
    "ReconciliationConfig",
    "ReconciliationResult",
    "ReconciliationService",
]
