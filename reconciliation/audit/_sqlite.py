"""The embedded audit store: one SQLite file in WAL mode, standard library only.

WAL lets readers (a `reconciliation history` command) read while the service writes.
A write waits for a lock at most `timeout_seconds`, then fails with
`AuditStoreUnavailableError` instead of blocking the caller.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from typing import TYPE_CHECKING

from reconciliation.audit._errors import AuditStoreError, AuditStoreUnavailableError, no_tables
from reconciliation.audit._sql import SqlAuditStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from reconciliation.audit._sql import Execute, Row

__all__ = ["SqliteAuditStore"]

logger = logging.getLogger(__name__)

_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""Primary result codes of a database that cannot be used now but may be later."""


class SqliteAuditStore(SqlAuditStore):
    """An `AuditStore` in a SQLite file. It connects at first use, not at construction."""

    def __init__(self, path: str | os.PathLike[str], *, timeout_seconds: float = 5.0) -> None:
        super().__init__()
        self._path = os.fspath(path)
        self._timeout_seconds = timeout_seconds
        self._connection: sqlite3.Connection | None = None

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        try:
            connection = sqlite3.connect(
                self._path, timeout=self._timeout_seconds, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            connection.row_factory = sqlite3.Row
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            connection.close()
            raise self._translate(exc) from exc
        if mode != "wal":
            logger.warning("Audit store %s runs in journal mode %s, not WAL", self._path, mode)
        self._connection = connection
        return connection

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Execute]:
        with self._lock:
            connection = self._connect()

            def execute(sql: str, params: Sequence[object]) -> Sequence[Row]:
                return connection.execute(sql, params).fetchall()

            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield execute
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from exc
                raise

    def _lock_schema(self, execute: Execute) -> None:
        """`BEGIN IMMEDIATE` already holds the database's one write lock."""

    def _translate(self, exc: sqlite3.Error) -> AuditStoreError:
        if isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("no such table"):
            return no_tables(f"SQLite audit store {self._path}")
        if (getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_ERROR) & 0xFF) in _TRANSIENT:
            return AuditStoreUnavailableError(f"SQLite audit store {self._path} unavailable: {exc}")
        return AuditStoreError(f"SQLite audit store {self._path}: {exc}")
