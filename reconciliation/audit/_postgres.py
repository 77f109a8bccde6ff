"""The shared audit store: PostgreSQL through psycopg 3, for several processes or machines.

psycopg is imported only when this store is constructed, so the package works without
it. The store connects at first use and again after the server went away; every
statement is bounded by `timeout_seconds`, so a stalled server fails a call with
`AuditStoreUnavailableError` instead of blocking the caller.
"""

from __future__ import annotations

import contextlib
import math
import urllib.parse
from typing import TYPE_CHECKING, Any

from reconciliation.audit._errors import AuditStoreError, AuditStoreUnavailableError, no_tables
from reconciliation.audit._sql import SqlAuditStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import psycopg

    from reconciliation.audit._sql import Execute, Row

__all__ = ["PostgresAuditStore"]

_LIBPQ_MIN_CONNECT_TIMEOUT = 2
_UNDEFINED_TABLE = "42P01"
"""The SQLSTATE of a query on a table that does not exist."""


class PostgresAuditStore(SqlAuditStore):
    """An `AuditStore` in PostgreSQL, at a libpq URL (``postgresql://user@host:port/db``).

    Tables go to the first schema of the connection's search path; choose one with
    ``?options=-csearch_path%3Dmy_schema`` in the URL.
    """

    def __init__(self, url: str, *, timeout_seconds: float = 5.0) -> None:
        """Raises AuditStoreError when psycopg is not installed."""
        super().__init__()
        try:
            import psycopg  # noqa: PLC0415 - an optional dependency, needed only here
            from psycopg.rows import dict_row  # noqa: PLC0415
        except ModuleNotFoundError as exc:
            msg = "the PostgreSQL audit store needs psycopg 3: pip install 'psycopg[binary]'"
            raise AuditStoreError(msg) from exc
        self._psycopg = psycopg
        self._dict_row = dict_row
        self._url = url
        parts = urllib.parse.urlsplit(url)
        self._where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        """Host, port and database, without the URL's credentials, for messages."""
        self._timeout_seconds = timeout_seconds
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        timeout_ms = str(max(1, round(self._timeout_seconds * 1000)))
        try:
            connection = self._psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(_LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(self._timeout_seconds)),
            )
        except self._psycopg.Error as exc:
            raise self._translate(exc) from exc
        try:
            connection.execute(
                "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)",
                (timeout_ms, timeout_ms),
            )
        except self._psycopg.Error as exc:
            connection.close()
            raise self._translate(exc) from exc
        self._connection = connection
        return connection

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Execute]:
        del write
        with self._lock:
            connection = self._connect()
            try:
                with connection.transaction(), connection.cursor(row_factory=self._dict_row) as cursor:

                    def execute(sql: str, params: Sequence[object]) -> Sequence[Row]:
                        cursor.execute(sql.replace("?", "%s"), params or None)
                        return cursor.fetchall() if cursor.description is not None else []

                    yield execute
            except self._psycopg.Error as exc:
                if connection.broken:
                    self._discard()
                raise self._translate(exc) from exc

    def _lock_schema(self, execute: Execute) -> None:
        execute("SELECT pg_advisory_xact_lock(hashtext('reconciliation.audit:' || current_schema()))", ())

    def _translate(self, exc: psycopg.Error) -> AuditStoreError:
        if exc.sqlstate == _UNDEFINED_TABLE:
            return no_tables(f"PostgreSQL audit store {self._where}")
        if isinstance(exc, self._psycopg.OperationalError):
            return AuditStoreUnavailableError(f"PostgreSQL audit store {self._where} unavailable: {exc}")
        return AuditStoreError(f"PostgreSQL audit store {self._where}: {exc}")
