"""Audit history and break ageing: what every run found, and how long each break has lasted.

`BreakTracker` ages breaks across runs (pure logic); an `AuditStore` (SQLite or
PostgreSQL, chosen by `open_store`) keeps runs, discrepancies and break states, so
ageing survives a restart and people can read the history back.
"""

from __future__ import annotations

from reconciliation.audit.ageing import AgeingPolicy, AgeingUpdate, BreakTracker
from reconciliation.audit.records import BreakKey, BreakState, RecordedDiscrepancy, RunRecord

__all__ = [
    "AgeingPolicy",
    "AgeingUpdate",
    "BreakKey",
    "BreakState",
    "BreakTracker",
    "RecordedDiscrepancy",
    "RunRecord",
]
