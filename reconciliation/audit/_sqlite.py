"""The embedded audit store: one SQLite file in WAL mode, standard library only.

WAL lets readers (a `reconciliation history` command) read while the service writes.
A write waits for a lock at most `timeout_seconds`, then fails with
`AuditStoreUnavailableError` instead of blocking the caller.

A store opened `read_only` (history, the board) changes nothing: the file is opened with
SQLite's `mode=ro`, never switched to WAL, and no -wal or -shm file is created beside it
(see `SqliteAuditStore`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path
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


_WAL_VERSIONS = b"\x02\x02"
"""Bytes 18 and 19 of a SQLite file's header (its write and read versions) in WAL mode."""


class SqliteAuditStore(SqlAuditStore):
    """An `AuditStore` in a SQLite file. It connects at first use, not at construction.

    `read_only`: every read opens its own connection with `mode=ro`, which never writes the
    file or converts it to WAL. A file in WAL mode needs its -shm and -wal files to be read:
    while a writer has them open they are used as they are; when there are none (no writer
    is connected), the file is read as `immutable`, so that none is created. A write is
    refused (`AuditStoreError`).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout_seconds: float = 5.0, read_only: bool = False
    ) -> None:
        super().__init__()
        self._path = os.fspath(path)
        self._timeout_seconds = timeout_seconds
        self._read_only = read_only
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
        connection = self._open(self._path)
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            connection.close()
            raise self._translate(exc) from exc
        if mode != "wal":
            logger.warning("Audit store %s runs in journal mode %s, not WAL", self._path, mode)
        self._connection = connection
        return connection

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that changes nothing on disk (see the class)."""
        path = Path(self._path)
        if not path.is_file():
            msg = f"SQLite audit store {self._path}: no such file"
            raise AuditStoreError(msg)
        immutable = _in_wal_mode(path) and not Path(f"{self._path}-shm").exists()
        return self._open(f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}", uri=True)

    def _open(self, database: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                database, uri=uri, timeout=self._timeout_seconds, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        connection.row_factory = sqlite3.Row
        return connection

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Execute]:
        if self._read_only:
            if write:
                msg = f"SQLite audit store {self._path} is opened read-only"
                raise AuditStoreError(msg)
            with self._lock, contextlib.closing(self._connect_read_only()) as connection:
                yield from self._in(connection, write=False)
            return
        with self._lock:
            yield from self._in(self._connect(), write=write)

    def _in(self, connection: sqlite3.Connection, *, write: bool) -> Iterator[Execute]:
        """One transaction on `connection`, committed after the block (rolled back if it raised)."""

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


def _in_wal_mode(path: Path) -> bool:
    """Whether the SQLite file at `path` is in WAL mode, from its header (False if it has none)."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header[18:20] == _WAL_VERSIONS
