"""Audit history and break ageing: what every run found, and how long each break has lasted.

`BreakTracker` ages breaks across runs (pure logic); an `AuditStore` (SQLite or
PostgreSQL, chosen by `open_store`) keeps runs, discrepancies, break states and every
step of every correction, so ageing survives a restart and people can read the history
back.
"""

from __future__ import annotations

from reconciliation._domain.ageing import AgeingPolicy, AgeingUpdate, BreakTracker
from reconciliation._domain.breaks import BreakKey, BreakState
from reconciliation.audit._errors import (
    AuditSchemaError,
    AuditStoreError,
    AuditStoreUnavailableError,
    NoAuditTablesError,
)
from reconciliation.audit._history import AccountCorrections, AccountHistory, load_corrections, load_history
from reconciliation.audit._postgres import PostgresAuditStore
from reconciliation.audit._records import BreakSighting, RecordedDiscrepancy, RunRecord
from reconciliation.audit._sql import SCHEMA_VERSION
from reconciliation.audit._sqlite import SqliteAuditStore
from reconciliation.audit._store import AuditStore, open_store

__all__ = [
    "SCHEMA_VERSION",
    "AccountCorrections",
    "AccountHistory",
    "AgeingPolicy",
    "AgeingUpdate",
    "AuditSchemaError",
    "AuditStore",
    "AuditStoreError",
    "AuditStoreUnavailableError",
    "BreakKey",
    "BreakSighting",
    "BreakState",
    "BreakTracker",
    "NoAuditTablesError",
    "PostgresAuditStore",
    "RecordedDiscrepancy",
    "RunRecord",
    "SqliteAuditStore",
    "load_corrections",
    "load_history",
    "open_store",
]
