"""The outbox journal: runs waiting for Redis, on this host's disk, so that a crash loses none.

A SQLite database in WAL mode, `outbox.sqlite3` in the state directory, one row per queued
run or correction step (its order, run id, account and the bytes the Redis sink sends),
locked to one process at a time; a damaged file is moved aside and `problem` says so.
docs/architecture.md ("The outbox journal") says how it is written, replayed and locked,
and why SQLite on the host with `synchronous=NORMAL` (measured in bench/choose_journal.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["JOURNAL_FILE", "JOURNAL_SYNC_FULL", "Journal", "JournalEntry", "JournalError"]

logger = logging.getLogger(__name__)

JOURNAL_FILE = "outbox.sqlite3"
LOCK_FILE = "outbox.lock"
JOURNAL_SYNC_FULL = False
"""Whether each commit waits for the disk (`synchronous=FULL`). Off: a process crash loses
nothing, a power cut can lose the last commits; bench/choose_journal.py measures both."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    data BLOB NOT NULL
)
"""


class JournalError(OSError):
    """The state directory cannot hold the journal (missing and not creatable, not a
    directory, not writable, in use by another process); the message says which and how to fix it.

    An `OSError`, so that a host need not import it to catch it."""


@attrs.frozen
class JournalEntry:
    seq: int
    run_id: str
    account_id: str
    data: bytes


class Journal:
    """The open journal; thread-safe: runs are written on the threads that finish them (the
    comparator's, the corrector's), and deleted on the Redis delivery actor's."""

    def __init__(self, directory: Path, connection: sqlite3.Connection, lock: int, problem: str | None) -> None:
        self.directory = directory
        self._connection = connection
        self._lock = lock
        self._using = threading.Lock()
        self.path = directory / JOURNAL_FILE
        self.problem = problem
        """Set when the journal found at start was unusable and was moved aside."""

    @classmethod
    def open(cls, state_dir: str) -> Journal:
        """Open (or begin) the journal in `state_dir`, creating the directory if needed.

        Raises:
            JournalError: the directory cannot be used; nothing was changed.
        """
        directory = Path(state_dir).expanduser()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            msg = f"state_dir {str(directory)!r} is not a directory: give a directory for the outbox journal"
            raise JournalError(msg) from None
        except OSError as error:
            msg = f"state_dir {str(directory)!r} cannot be created: {error.strerror or error}"
            raise JournalError(msg) from error
        if not os.access(directory, os.W_OK | os.X_OK):
            msg = (
                f"state_dir {str(directory)!r} is not writable by this process (uid {os.getuid()}): "
                "the outbox journal must be written there; fix its permissions or choose another"
            )
            raise JournalError(msg)
        lock = _lock(directory)
        try:
            connection, problem = _connect(directory / JOURNAL_FILE)
        except BaseException:
            os.close(lock)
            raise
        return cls(directory, connection, lock, problem)

    def entries(self) -> list[JournalEntry]:
        """What the journal holds, oldest first."""
        with self._using:
            rows = self._connection.execute("SELECT seq, run_id, account_id, data FROM outbox ORDER BY seq").fetchall()
        return [JournalEntry(seq, run_id, account_id, bytes(data)) for seq, run_id, account_id, data in rows]

    def append(self, run_id: str, account_id: str, data: bytes) -> int:
        """Write one entry, committed before this returns; its `seq`.

        Raises:
            sqlite3.Error: it could not be written (disk full, file damaged).
        """
        with self._using, self._connection:
            cursor = self._connection.execute(
                "INSERT INTO outbox (run_id, account_id, data) VALUES (?, ?, ?)", (run_id, account_id, data)
            )
        return cast("int", cursor.lastrowid)  # an INSERT always sets it

    def remove(self, seqs: Iterable[int]) -> None:
        """Delete entries (delivered, dropped or set aside), committed before this returns."""
        with self._using, self._connection:
            self._connection.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs])

    def close(self) -> None:
        """Close the database and release the directory. Idempotent."""
        with self._using, contextlib.suppress(sqlite3.Error):
            self._connection.close()
        if self._lock >= 0:
            lock, self._lock = self._lock, -1
            os.close(lock)


def _lock(directory: Path) -> int:
    path = directory / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        msg = (
            f"state_dir {str(directory)!r} is not writable by this process (uid {os.getuid()}): "
            f"{error.strerror or error}; the outbox journal must be written there: fix its permissions or choose another"
        )
        raise JournalError(msg) from error
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        msg = (
            f"state_dir {str(directory)!r} is in use by another reconciliation process (pid {holder}): "
            "each process needs a state directory of its own"
        )
        raise JournalError(msg) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)
    return descriptor


def _connect(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """The journal's connection; and, when the file found was unusable, what was done with it."""
    try:
        return _open_database(path), None
    except sqlite3.DatabaseError as error:
        aside = path.with_name(f"{path.name}.unusable-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
        problem = (
            f"the outbox journal {str(path)!r} could not be read ({error}): moved aside to {aside.name!r} "
            "and a new journal begun; runs it held were not delivered (inspect it with sqlite3)"
        )
        logger.error("%s", problem)  # noqa: TRY400 - the reason is the message; the service goes on
    try:
        return _open_database(path), problem
    except sqlite3.Error as error:
        msg = f"the outbox journal {str(path)!r} cannot be created: {error}"
        raise JournalError(msg) from error


def _open_database(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        _expect(mode, "wal", "the file system does not allow WAL mode")
        connection.execute(f"PRAGMA synchronous={'FULL' if JOURNAL_SYNC_FULL else 'NORMAL'}")
        _expect(connection.execute("PRAGMA quick_check").fetchone(), "ok", "it is damaged")
        connection.execute(_SCHEMA)
        connection.execute("SELECT count(*), sum(length(data)) FROM outbox").fetchone()
        connection.commit()
    except BaseException:
        connection.close()
        raise
    return connection


def _expect(row: tuple[object, ...] | None, wanted: str, meaning: str) -> None:
    got = str(row[0]) if row else None
    if str(got).lower() != wanted:
        msg = f"{meaning} ({got!s:.200})"
        raise sqlite3.DatabaseError(msg)
