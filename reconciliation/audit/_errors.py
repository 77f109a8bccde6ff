"""What an audit store raises: one base class, and the failure a caller should retry."""

from __future__ import annotations

import logging

__all__ = ["AuditSchemaError", "AuditStoreError", "AuditStoreUnavailableError"]

logger = logging.getLogger(__name__)


class AuditStoreError(Exception):
    """The audit store could not do what was asked."""


class AuditStoreUnavailableError(AuditStoreError):
    """The database cannot be reached right now (locked, down, timed out): try again later.

    Nothing of the failed call was written.
    """


class AuditSchemaError(AuditStoreError):
    """The database's schema is newer than this code: refuse to write to it."""
