"""Reading both sides of an account: concurrent, bounded in time, and checked.

A broker that raises, hangs or answers with malformed data gives a `SnapshotError`
whose message says which call, which entry and which field — never an empty book,
which would flag every local position as missing at the broker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Sequence, Sized
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from reconciliation._columnar import ColumnsError, PositionColumns, is_columnar_batch, parse_columns
from reconciliation._domain.error_text import MAX_VALUE_TEXT, bounded, describe_error, shown
from reconciliation._domain.models import BrokerAccount, BrokerPosition, LocalAccount, Position, Snapshot
from reconciliation._runtime.book_calls import BookCallError
from reconciliation._runtime.workers import call_in_daemon_thread

if TYPE_CHECKING:
    import datetime as dt

    from reconciliation._domain.protocols import BrokerQuery, PortfolioManager
    from reconciliation._runtime.book_calls import BookCalls
    from reconciliation._runtime.clock import TimerHandle

__all__ = [
    "CHECK_CHUNK",
    "SnapshotError",
    "fetch_snapshot",
    "parse_entries",
    "parse_one",
    "parse_positions",
    "start_snapshot",
]

T = TypeVar("T")

CHECK_CHUNK = 20_000
"""Entries checked at a time before the other threads may run."""


class SnapshotError(Exception):
    """One or more calls for a snapshot failed; the message is for an operator."""


def parse_one(cls: type[T], raw: object, *, call: str, where: str = "") -> T:
    """`raw` as a valid `cls`: taken as it is, or rebuilt from a look-alike's attributes."""
    if type(raw) is cls:
        return raw
    label = f"{call}{where}"
    if raw is None:
        msg = f"{label} is None, expected a {cls.__name__}"
        raise SnapshotError(msg)
    values: dict[str, Any] = {}
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        if isinstance(raw, dict):
            present, value = field.name in raw, raw.get(field.name)
        else:
            present, value = hasattr(raw, field.name), getattr(raw, field.name, None)
        if present:
            values[field.name] = value
        elif field.default is attrs.NOTHING:
            msg = f"{label} has no field {field.name!r} ({type(raw).__name__} {shown(raw)})"
            raise SnapshotError(msg)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        msg = f"{label}: {bounded(str(exc), 4 * MAX_VALUE_TEXT)}"
        raise SnapshotError(msg) from exc


def parse_entries(cls: type[T], raw: object, *, call: str) -> tuple[T, ...]:
    """A list of positions as valid `cls` instances; the fast path keeps valid ones as they are."""
    if raw is None or isinstance(raw, str | bytes) or not isinstance(raw, Sequence | set | frozenset):
        msg = f"{call} returned {type(raw).__name__} {shown(raw)}, expected a list of {cls.__name__}"
        raise SnapshotError(msg)
    entries = tuple(raw)
    if _all_of(cls, entries):
        return entries
    names = frozenset(field.name for field in attrs.fields(cls))  # type: ignore[arg-type]
    return tuple(_parse_entry(cls, entry, index, call, names) for index, entry in enumerate(entries))


def _all_of(cls: type, entries: tuple[object, ...]) -> bool:
    """Whether every entry is exactly a `cls`: a C-level pass over each `CHECK_CHUNK` entries,
    letting the other threads run between two (a large book read must not hold the
    other accounts' runs for its whole length)."""
    if len(entries) <= CHECK_CHUNK:
        return set(map(type, entries)) <= {cls}
    for start in range(0, len(entries), CHECK_CHUNK):
        if not set(map(type, entries[start : start + CHECK_CHUNK])) <= {cls}:
            return False
        time.sleep(0)
    return True


def _parse_entry(cls: type[T], entry: object, index: int, call: str, names: frozenset[str]) -> T:
    """`parse_one` for entry `index`; a plain dict (a broker's JSON) is given to `cls` at
    once, with the same fields and the same checks, and only one that fails them is taken
    through `parse_one`, for its message."""
    if type(entry) is dict:
        fields = entry if entry.keys() <= names else {name: entry[name] for name in names if name in entry}
        try:
            return cls(**fields)
        except (TypeError, ValueError):
            pass
    return parse_one(cls, entry, call=call, where=_entry_label(index, entry))


def parse_positions(cls: type[T], raw: object, *, call: str) -> tuple[T, ...] | PositionColumns:
    """`parse_entries`, or a columnar batch (an Arrow table, a polars DataFrame) checked as
    strictly, into `PositionColumns` (see `reconciliation._columnar.input`)."""
    if not is_columnar_batch(raw):
        return parse_entries(cls, raw, call=call)
    try:
        return parse_columns(raw, "local" if cls is Position else "broker", call=call)
    except ColumnsError as exc:
        raise SnapshotError(str(exc)) from exc


def _entry_label(index: int, entry: object) -> str:
    try:
        symbol = entry.get("symbol") if isinstance(entry, dict) else getattr(entry, "symbol", None)
    except Exception:  # noqa: BLE001 - a hostile entry is named by its index alone
        symbol = None
    return f" entry {index} (symbol {shown(symbol)})" if isinstance(symbol, str) else f" entry {index}"


async def fetch_snapshot(
    portfolio: PortfolioManager,
    broker: BrokerQuery,
    account_id: str,
    *,
    calls: BookCalls,
    limit: float,
    now: Callable[[], dt.datetime],
) -> Snapshot:
    """Read the four figures (the plain methods in one worker job, see `BookCalls.call_all`),
    each bounded by `limit` seconds from its start, then check them.

    See `BookCalls` for where each call runs and how a hung one is handled.

    Raises:
        SnapshotError: naming every call that failed, timed out or answered malformed data.
    """
    started_at = now()
    answers = await _read(_methods(portfolio, broker), account_id, calls, limit)
    taken_at = now()
    if _large(answers):
        return await call_in_daemon_thread(lambda: _snapshot_of(answers, account_id, started_at, taken_at))
    return _snapshot_of(answers, account_id, started_at, taken_at)


def start_snapshot(
    portfolio: PortfolioManager,
    broker: BrokerQuery,
    account_id: str,
    *,
    calls: BookCalls,
    limit: float,
    now: Callable[[], dt.datetime],
    loop: asyncio.AbstractEventLoop,
    call_later: Callable[[float, Callable[[], object]], TimerHandle] | None = None,
) -> concurrent.futures.Future[Snapshot] | None:
    """`fetch_snapshot` for books whose four methods are plain (the usual ones), without a
    hop to the event loop: one worker job started from the caller's thread
    (`BookCalls.start_all`, which says when `loop` takes a slow job over), the answers
    checked where they arrive (a large book on a thread of its own). None when a method is
    `async`: those books are read by `fetch_snapshot`.

    Raises:
        RuntimeError: the workers are closed.
    """
    methods = _methods(portfolio, broker)
    if any(inspect.iscoroutinefunction(method) for _, method in methods):
        return None
    started_at = now()
    reading: concurrent.futures.Future[Snapshot] = concurrent.futures.Future()

    def answered(done: concurrent.futures.Future[list[Any]]) -> None:
        try:
            answers = done.result()
        except BaseException as error:  # noqa: BLE001 - the read's outcome, for whoever waits
            reading.set_exception(error)
            return
        taken_at = now()

        def check() -> None:
            try:
                reading.set_result(_snapshot_of(answers, account_id, started_at, taken_at))
            except BaseException as error:  # noqa: BLE001 - the read's outcome, for whoever waits
                reading.set_exception(error)

        if _large(answers):
            threading.Thread(target=check, name="reconciliation-check", daemon=True).start()
        else:
            check()

    calls.start_all(
        account_id,
        [(name, method, (account_id,)) for name, method in methods],
        limit=limit,
        loop=loop,
        call_later=call_later,
    ).add_done_callback(answered)
    return reading


def _methods(portfolio: PortfolioManager, broker: BrokerQuery) -> list[tuple[str, Callable[[str], Any]]]:
    return [
        ("local.get_positions", portfolio.get_positions),
        ("local.get_account", portfolio.get_account),
        ("broker.get_positions", broker.get_positions),
        ("broker.get_account", broker.get_account),
    ]


def _large(answers: list[Any]) -> bool:
    """Whether a book's answer is longer than `CHECK_CHUNK`: it is then checked off the
    thread it arrived on (the fetch loop or the worker), so the other accounts' reads go on
    meanwhile."""
    for answer in (answers[0], answers[2]):
        try:
            if isinstance(answer, Sized) and len(answer) > CHECK_CHUNK:
                return True
        except BaseException:  # noqa: BLE001, S112 - a hostile answer's __len__ is for the checks to name
            continue
    return False


def _snapshot_of(answers: list[Any], account_id: str, started_at: dt.datetime, taken_at: dt.datetime) -> Snapshot:
    """The four answers as a checked snapshot.

    Raises:
        SnapshotError: naming every call that failed, timed out or answered malformed data.
    """
    failures = [
        str(a) if isinstance(a, BookCallError) else describe_error(a)
        for a in answers
        if isinstance(a, BaseException)
    ]
    if failures:
        raise SnapshotError(bounded("; ".join(failures)))
    local_positions, local_account, broker_positions, broker_account = answers
    problems: list[str] = []
    parsed = [
        _collect(problems, lambda: parse_positions(Position, local_positions, call="local.get_positions")),
        _collect(problems, lambda: _account(LocalAccount, local_account, "local.get_account", account_id)),
        _collect(
            problems, lambda: parse_positions(BrokerPosition, broker_positions, call="broker.get_positions")
        ),
        _collect(problems, lambda: _account(BrokerAccount, broker_account, "broker.get_account", account_id)),
    ]
    if problems:
        raise SnapshotError(bounded("; ".join(problems)))
    return Snapshot(account_id, parsed[0], parsed[1], parsed[2], parsed[3], taken_at, read_started_at=started_at)


async def _read(
    methods: list[tuple[str, Callable[[str], Any]]], account_id: str, calls: BookCalls, limit: float
) -> list[Any]:
    """Each method's answer, or what it failed with: the plain ones in one worker job
    (`BookCalls.call_all`), the `async` ones concurrently with it."""
    plain = [index for index, (_, method) in enumerate(methods) if not inspect.iscoroutinefunction(method)]
    if len(plain) == len(methods):  # the usual books: one job, awaited without a task around it
        return await calls.call_all(account_id, [(*method, (account_id,)) for method in methods], limit=limit)
    coroutines = [index for index in range(len(methods)) if index not in plain]
    answers: list[Any] = [None] * len(methods)
    jobs: list[Awaitable[Any]] = [
        calls.call(methods[index][1], account_id, name=methods[index][0], limit=limit) for index in coroutines
    ]
    jobs.append(calls.call_all(account_id, [(*methods[index], (account_id,)) for index in plain], limit=limit))
    *done, together = await asyncio.gather(*jobs, return_exceptions=True)
    for index, answer in zip(coroutines, done, strict=True):
        answers[index] = answer
    for index, answer in zip(plain, together if isinstance(together, list) else [together] * len(plain), strict=True):
        answers[index] = answer
    return answers


def _collect(problems: list[str], parse: Callable[[], Any]) -> Any:
    """Parse one answer; whatever the host's objects raise while read is malformed data."""
    try:
        return parse()
    except SnapshotError as exc:
        problems.append(f"malformed data: {exc}")
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - a look-alike's property may raise anything
        problems.append(f"malformed data: reading an entry raised {describe_error(exc)}")
    return None


_AccountT = TypeVar("_AccountT", LocalAccount, BrokerAccount)


def _account(cls: type[_AccountT], raw: object, call: str, account_id: str) -> _AccountT:
    account = parse_one(cls, raw, call=call)
    if account.account_id != account_id:
        msg = f"{call} answered for account {shown(account.account_id)}, not {account_id!r}"
        raise SnapshotError(msg)
    return account
