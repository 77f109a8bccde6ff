"""Keeps a trading engine honest: compares its book with the broker's, raises every break.

The package root exports exactly the public contract (docs/contract in ../shared/spec).
"""

from __future__ import annotations

from reconciliation._domain.models import (
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
from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
from reconciliation._runtime.messages import ReconcileRequest
from reconciliation._runtime.service import ReconciliationService
from reconciliation.paper._books import InMemoryPortfolio, PaperBroker

__version__ = "0.1.0"
"""The installed distribution's version (pyproject.toml reads it from here)."""

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
