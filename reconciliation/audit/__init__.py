"""Audit history and break ageing: what every run found, and how long each break has lasted.

`BreakTracker` ages breaks across runs (pure logic); an `AuditStore` (SQLite or
PostgreSQL, chosen by `open_store`) keeps runs, discrepancies and break states, so
ageing survives a restart and people can read the history back.
"""

from __future__ import annotations

from reconciliation.audit._sql import SCHEMA_VERSION
from reconciliation.audit.ageing import AgeingPolicy, AgeingUpdate, BreakTracker
from reconciliation.audit.errors import AuditSchemaError, AuditStoreError, AuditStoreUnavailableError
from reconciliation.audit.history import AccountHistory, load_history
from reconciliation.audit.postgres import PostgresAuditStore
from reconciliation.audit.records import BreakKey, BreakState, RecordedDiscrepancy, RunRecord
from reconciliation.audit.sqlite import SqliteAuditStore
from reconciliation.audit.store import AuditStore, open_store

__all__ = [
    "SCHEMA_VERSION",
    "AccountHistory",
    "AgeingPolicy",
    "AgeingUpdate",
    "AuditSchemaError",
    "AuditStore",
    "AuditStoreError",
    "AuditStoreUnavailableError",
    "BreakKey",
    "BreakState",
    "BreakTracker",
    "PostgresAuditStore",
    "RecordedDiscrepancy",
    "RunRecord",
    "SqliteAuditStore",
    "load_history",
    "open_store",
]
