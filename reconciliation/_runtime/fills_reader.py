"""Reading the fills behind a run's position breaks from both books, bounded in time and count.

Each book's `get_fills(account_id, symbol, since)` (plain or `async`) is called once per
position, one position after another, through `BookCalls` like every book call; a plain
one for all the positions in one worker job (a thread hop per position would cost more
than the matching), an `async` one call by call. Both books are read together. Whatever a book answers is checked: the fills of other
positions, fills reported beyond `max_fills`, and answers that are not fills are left
out, and the note says so. A book that raises, hangs or runs out the time leaves the
positions it did not answer without fills; their breaks go out unexplained, saying why.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._domain.error_text import bounded, describe_error
from reconciliation._domain.fills import Fill, fill_of
from reconciliation._runtime.book_calls import BookCallError, BookCalls

if TYPE_CHECKING:
    import datetime as dt

    from reconciliation._domain.models import AssetType, ExplanationPolicy

__all__ = ["Side", "has_fills", "read_fills"]

Position = tuple[str, "AssetType"]
Side = dict[Position, tuple[Fill, ...]]
"""Each position's fills as one book reported them; a position it could not say is absent."""
Wanted = tuple[tuple[str, "AssetType", "dt.datetime"], ...]


def has_fills(book: object) -> bool:
    """Whether a book can say which fills it holds (`get_fills`)."""
    return callable(getattr(book, "get_fills", None))


async def read_fills(
    books: tuple[object, object],
    account_id: str,
    positions: Iterable[tuple[str, AssetType, dt.datetime]],
    *,
    calls: BookCalls,
    policy: ExplanationPolicy,
) -> tuple[Side, Side, str | None]:
    """Both books' fills of `positions` (symbol, asset type, since): (local, broker, note)."""
    wanted = tuple(positions)
    deadline = time.monotonic() + policy.timeout_seconds
    notes: list[str] = []
    local, broker = await asyncio.gather(
        _side(_Reading(books[0], "local.get_fills", account_id, calls, deadline, notes), wanted, policy.max_fills),
        _side(_Reading(books[1], "broker.get_fills", account_id, calls, deadline, notes), wanted, policy.max_fills),
    )
    return local, broker, bounded("; ".join(notes)) if notes else None


@attrs.frozen
class _Reading:
    """One book's `get_fills`, called as `name`, by `deadline`; what goes wrong is told to `notes`."""

    book: object
    name: str
    account_id: str
    calls: BookCalls
    deadline: float
    notes: list[str]


async def _side(reading: _Reading, wanted: Wanted, max_fills: int) -> Side:
    method = reading.book.get_fills  # type: ignore[attr-defined]
    read = _one_by_one if inspect.iscoroutinefunction(method) else _in_one_job
    answers = await read(reading, method, wanted)
    return {
        (symbol, asset_type): _checked(answer, symbol, asset_type, reading, max_fills)
        for (symbol, asset_type), answer in answers
    }


async def _one_by_one(reading: _Reading, method: Any, wanted: Wanted) -> list[tuple[Position, Any]]:
    answers: list[tuple[Position, Any]] = []
    for read, (symbol, asset_type, since) in enumerate(wanted):
        remaining = reading.deadline - time.monotonic()
        if remaining <= 0:
            reading.notes.append(f"{reading.name} ran out of time after {read} of {len(wanted)} positions")
            break
        try:
            arguments = (reading.account_id, symbol, since)
            answer = await reading.calls.call(
                method, reading.account_id, name=reading.name, limit=remaining, arguments=arguments
            )
        except BookCallError as error:
            reading.notes.append(f"{error} (after {read} of {len(wanted)} positions)")
            break
        answers.append(((symbol, asset_type), answer))
    return answers


async def _in_one_job(reading: _Reading, method: Any, wanted: Wanted) -> list[tuple[Position, Any]]:
    """A plain `get_fills` for every position on one worker; what it answered before a
    timeout or an error is kept, and it is asked nothing more after. One that turns out to
    answer awaitables (a plain function returning a coroutine) is read call by call."""
    answers: list[tuple[Position, Any]] = []
    stop = threading.Event()
    awaitable = threading.Event()

    def read_all() -> None:
        for symbol, asset_type, since in wanted:
            if stop.is_set():
                return
            answer = method(reading.account_id, symbol, since)
            if inspect.isawaitable(answer):
                close = getattr(answer, "close", None)
                if callable(close):
                    close()
                awaitable.set()
                return
            answers.append(((symbol, asset_type), answer))

    limit = max(reading.deadline - time.monotonic(), 0.0)
    try:
        await reading.calls.call(read_all, reading.account_id, name=reading.name, limit=limit, arguments=())
    except BookCallError as error:
        stop.set()
        reading.notes.append(f"{error} (after {len(answers)} of {len(wanted)} positions)")
    read = list(answers)
    if awaitable.is_set():
        read += await _one_by_one(reading, method, wanted[len(read) :])
    return read


def _checked(
    answer: Any, symbol: str, asset_type: AssetType, reading: _Reading, max_fills: int
) -> tuple[Fill, ...]:
    """The fills of the position in `answer`, at most `max_fills`; what was left out goes to the notes."""
    name, notes = reading.name, reading.notes
    if isinstance(answer, str | bytes) or not isinstance(answer, Iterable):
        notes.append(f"{name}({symbol}) answered {type(answer).__name__}, not a list of fills")
        return ()
    kept: list[Fill] = []
    others = refused = 0
    for count, record in enumerate(answer):
        if count >= max_fills:
            notes.append(f"{name}({symbol}) gave more than {max_fills} fills: the first {max_fills} were read")
            break
        try:
            fill = fill_of(record)
        except (TypeError, ValueError) as error:
            refused += 1
            if refused == 1:
                notes.append(f"{name}({symbol}) gave a fill that is not one: {describe_error(error)}")
            continue
        if (fill.symbol, fill.asset_type) != (symbol, asset_type):
            others += 1
            continue
        kept.append(fill)
    if others:
        notes.append(f"{name}({symbol}) gave {others} fills of other positions, left out")
    return tuple(kept)
