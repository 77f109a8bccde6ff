"""What an audit store raises: one base class, and the failure a caller should retry."""

from __future__ import annotations

__all__ = ["AuditSchemaError", "AuditStoreError", "AuditStoreUnavailableError", "NoAuditTablesError", "no_tables"]


class AuditStoreError(Exception):
    """The audit store could not do what was asked."""


class AuditStoreUnavailableError(AuditStoreError):
    """The database cannot be reached right now (locked, down, timed out): try again later.

    Nothing of the failed call was written.
    """


class AuditSchemaError(AuditStoreError):
    """The database's schema is newer than this code: refuse to write to it."""


class NoAuditTablesError(AuditStoreError):
    """The database has no audit tables: nothing was recorded there yet, or it is not an audit store."""


def no_tables(where: str) -> NoAuditTablesError:
    """The one message both backends give for a database without the audit tables."""
    return NoAuditTablesError(
        f"{where} has no audit tables: no service with audit_store set has recorded to it yet, "
        "or it is not an audit store"
    )
