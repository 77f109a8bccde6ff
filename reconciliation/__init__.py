"""Keeps a trading engine honest: compares its book with the broker's, raises every break.

The package root exports the public contract (spec/contract.md) and the types a host
needs around it: break states for the kill switch, its callback type, health,
auto-correction (`CorrectionPolicy`, `CorrectableBook`, `Correction`), the fills behind a
break (`FillHistory`, `Fill`, `Explanation`, `ExplanationPolicy`), and
`ReconciliationRuntime` (with `Account`) for many accounts in one process.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciliation._domain.breaks import BreakState
    from reconciliation._domain.correction import Correction, CorrectionEvent, CorrectionStatus
    from reconciliation._domain.fills import Explanation, Fill
    from reconciliation._domain.models import (
        DEFAULT_SEVERITY,
        AgeingPolicy,
        AssetType,
        BrokerAccount,
        BrokerPosition,
        CorrectionLimits,
        CorrectionPolicy,
        Discrepancy,
        DiscrepancySeverity,
        DiscrepancyType,
        ExplanationPolicy,
        LocalAccount,
        OrderFill,
        Position,
        ReconciliationConfig,
        ReconciliationResult,
    )
    from reconciliation._domain.plausibility import PlausibilityPolicy
    from reconciliation._domain.protocols import BrokerQuery, CorrectableBook, FillHistory, PortfolioManager
    from reconciliation._domain.sinks import FinishedRun
    from reconciliation._runtime.accounts import Account
    from reconciliation._runtime.delivery import DeliveryHealth
    from reconciliation._runtime.entry import EntryRef
    from reconciliation._runtime.health import ComponentHealth, ComponentState, ServiceHealth
    from reconciliation._runtime.messages import HaltCallback, ReconcileRequest
    from reconciliation._runtime.observers import BookCallTiming, RuntimeObserver
    from reconciliation._runtime.runtime import StopReport
    from reconciliation._runtime.service import ReconciliationRuntime, ReconciliationService
    from reconciliation.paper import InMemoryPortfolio, PaperBroker

__version__ = "0.1.0"
"""The installed distribution's version (pyproject.toml reads it from here)."""

__all__ = [
    "DEFAULT_SEVERITY",
    "Account",
    "AgeingPolicy",
    "AssetType",
    "BookCallTiming",
    "BreakState",
    "BrokerAccount",
    "BrokerPosition",
    "BrokerQuery",
    "ComponentHealth",
    "ComponentState",
    "CorrectableBook",
    "Correction",
    "CorrectionEvent",
    "CorrectionLimits",
    "CorrectionPolicy",
    "CorrectionStatus",
    "DeliveryHealth",
    "Discrepancy",
    "DiscrepancySeverity",
    "DiscrepancyType",
    "EntryRef",
    "Explanation",
    "ExplanationPolicy",
    "Fill",
    "FillHistory",
    "FinishedRun",
    "HaltCallback",
    "InMemoryPortfolio",
    "LocalAccount",
    "OrderFill",
    "PaperBroker",
    "PlausibilityPolicy",
    "PortfolioManager",
    "Position",
    "ReconcileRequest",
    "ReconciliationConfig",
    "ReconciliationResult",
    "ReconciliationRuntime",
    "ReconciliationService",
    "RuntimeObserver",
    "ServiceHealth",
    "StopReport",
]

_HOMES = {
    "_domain.breaks": "BreakState",
    "_domain.correction": "Correction CorrectionEvent CorrectionStatus",
    "_domain.models": "DEFAULT_SEVERITY AgeingPolicy AssetType BrokerAccount BrokerPosition CorrectionLimits CorrectionPolicy "
    "Discrepancy DiscrepancySeverity DiscrepancyType ExplanationPolicy LocalAccount OrderFill Position ReconciliationConfig "
    "ReconciliationResult",
    "_domain.fills": "Explanation Fill",
    "_domain.plausibility": "PlausibilityPolicy",
    "_domain.protocols": "BrokerQuery CorrectableBook FillHistory PortfolioManager",
    "_domain.sinks": "FinishedRun",
    "_runtime.accounts": "Account",
    "_runtime.delivery": "DeliveryHealth",
    "_runtime.entry": "EntryRef",
    "_runtime.health": "ComponentHealth ComponentState ServiceHealth",
    "_runtime.messages": "HaltCallback ReconcileRequest",
    "_runtime.observers": "BookCallTiming RuntimeObserver",
    "_runtime.runtime": "StopReport",
    "_runtime.service": "ReconciliationRuntime ReconciliationService",
    "paper": "InMemoryPortfolio PaperBroker",
}
"""The module of each public name, imported at the name's first use: `reconciliation --help` starts no runtime."""

if not TYPE_CHECKING:  # a type checker sees the imports above, and no attribute it does not know

    def __getattr__(name: str) -> object:
        for home, names in _HOMES.items():
            if name in names.split():
                value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
                globals()[name] = value
                return value
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


logging.getLogger(__name__).addHandler(logging.NullHandler())
