"""`reconciliation watch`: the streams' entries as they arrive, for people or for scripts.

The watcher follows the streams (`StreamFollower`: `XREAD BLOCK`, resumed after
the last entry shown when Redis comes back), decodes each entry (`inbound.decode`),
keeps those the filters admit and shows each on one line: coloured for people, or as a
JSON object for scripts (`json_line`, its shape documented in docs/payloads.md).
A malformed entry is shown as malformed, with its stream ID, and the watch goes on.
`Liveness` remembers when each account's next run is due (`next_run_due` of its last
result) and says once when an account goes stale: its runs stopped coming.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import attrs
from rich.console import Console
from rich.text import Text

from reconciliation._cli.board.page import age_text
from reconciliation._cli.render import message_line
from reconciliation._cli.safe_text import safe_text
from reconciliation._domain.backoff import Backoff
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.redaction import redact_text
from reconciliation._publishing.inbound import Message, decode
from reconciliation._publishing.streams import StreamFollower
from reconciliation._wire.payloads import RESULT_CHANNEL

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    import redis

    from reconciliation._publishing.streams import StreamEntry

__all__ = [
    "ENVELOPE_KEYS",
    "Filters",
    "Liveness",
    "StderrNarrator",
    "human_line",
    "json_line",
    "watch",
]

logger = logging.getLogger(__name__)

ENVELOPE_KEYS = ("channel", "stream", "stream_id", "replayed", "malformed", "raw")
"""The keys `json_line` puts first; a payload key of the same name is left out of the line."""


@attrs.frozen
class Filters:
    """Which payloads to show: of these accounts, of these severities (empty: all)."""

    accounts: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()

    def admit(self, message: Message) -> bool:
        """A malformed entry is always shown: nobody can tell whose it was."""
        payload = message.payload
        if payload is None:
            return True
        if self.accounts and payload.get("account_id") not in self.accounts:
            return False
        return not self.severities or payload.get("severity") in self.severities


def json_line(message: Message) -> str:
    """One JSON object: where the entry came from, then the payload's own keys (or why it is malformed).

    `{"channel": "reconciliation:discrepancy", "stream": "reconciliation:stream:discrepancy",
    "stream_id": "1764064800000-0", "replayed": false, "account_id": ..., "severity": ...}`;
    a malformed entry has `"malformed"` (the reason) and `"raw"` (its start) instead of
    the payload's keys. ASCII only: a control character is written `\\u001b`, never raw.
    """
    line: dict[str, Any] = {
        "channel": message.channel,
        "stream": message.stream,
        "stream_id": message.entry_id,
        "replayed": message.replayed,
    }
    if message.payload is None:
        line["malformed"] = safe_text(message.problem)
        line["raw"] = safe_text(message.preview)
    else:
        line.update((key, value) for key, value in message.payload.items() if key not in ENVELOPE_KEYS)
    return json.dumps(line, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def human_line(message: Message) -> Text:
    """One coloured line; every value from the payload is shown as safe, bounded text."""
    prefix = "(replay) " if message.replayed else ""
    if message.payload is None:
        line = Text(prefix)
        line.append("MALFORMED ", style="bold magenta")
        line.append(f"{message.stream} entry {message.entry_id}: {safe_text(message.problem)}", style="magenta")
        if message.preview:
            line.append(f"  {safe_text(message.preview)}", style="dim")
        return line
    stamp = message.payload.get("timestamp") or message.payload.get("resolved_at")
    clock = _clock(stamp) if isinstance(stamp, str) else ""
    return message_line(message.channel, message.payload, prefix=f"{prefix}{clock:<23}  ")


def _clock(stamp: str) -> str:
    """`2026-11-25 10:00:00 UTC`: the date, the time to the second, and the zone said."""
    try:
        return dt.datetime.fromisoformat(stamp).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return safe_text(stamp[:23])


@attrs.define
class Liveness:
    """Each account's next due run, from its results; `stale(now)` names the accounts that
    went stale since the last look (once each, until a newer result comes)."""

    _grace: dt.timedelta
    _due: dict[str, tuple[dt.datetime, dt.datetime]] = attrs.field(init=False, factory=dict)
    _said: set[str] = attrs.field(init=False, factory=set)

    def saw(self, message: Message) -> None:
        payload = message.payload
        if payload is None or message.channel != RESULT_CHANNEL or not payload.get("next_run_due"):
            return
        try:
            ran = dt.datetime.fromisoformat(payload["timestamp"])
            due = dt.datetime.fromisoformat(payload["next_run_due"])
        except (TypeError, ValueError):
            return
        account = payload["account_id"]
        known = self._due.get(account)
        if known is None or ran >= known[0]:
            self._due[account] = (ran, due)
            self._said.discard(account)

    def stale(self, now: dt.datetime) -> list[Text]:
        """A red line for each account newly stale: `STALE ACC-1: no run for 21 min (expected every 5 min)`."""
        lines = []
        for account, (ran, due) in sorted(self._due.items()):
            if account in self._said or now <= due + self._grace:
                continue
            self._said.add(account)
            line = Text(f"{now:%Y-%m-%d %H:%M:%S} UTC  ")
            line.append("STALE ", style="bold red")
            line.append(
                f"{safe_text(account)}: no run for {age_text((now - ran).total_seconds())} "
                f"(expected every {age_text(round((due - ran).total_seconds()))})",
                style="red",
            )
            lines.append(line)
        return lines


@attrs.frozen
class StderrNarrator:
    """Says on stderr that Redis went away, each retry, and when it is back."""

    _console: Console
    _where: str
    _backoff: Backoff

    def lost(self, attempt: int, retry_in: float, error: BaseException) -> None:
        reason = safe_text(redact_text(describe_error(error)))
        if attempt == 1:
            limit = self._backoff.give_up_after_seconds
            until = "never gives up" if limit is None else f"gives up after {limit:g} s"
            self._say(f"Lost Redis at {self._where}: {reason}; reconnecting in {retry_in:.1f} s ({until})")
        else:
            self._say(f"Redis at {self._where} still unreachable: {reason}; attempt {attempt + 1} in {retry_in:.1f} s")

    def back(self, resume_after: str | None) -> None:
        after = f" after entry {resume_after}" if resume_after else ""
        self._say(f"Redis at {self._where} is back; resuming{after}")

    def _say(self, text: str) -> None:
        self._console.print(text, style="yellow", markup=False, highlight=False)


def watch(  # noqa: PLR0913 - the command's options, each a keyword
    client: redis.Redis | redis.RedisCluster,
    show: Callable[[Message], object],
    *,
    replay_last: int = 0,
    count: int | None = None,
    timeout: float | None = None,
    filters: Filters = Filters(),
    backoff: Backoff = Backoff(),  # noqa: B008 - a frozen value
    narrator: StderrNarrator | None = None,
    stop: threading.Event | None = None,
    on_started: Callable[[], None] | None = None,
    since: dt.datetime | None = None,
    liveness: Liveness | None = None,
    say: Callable[[Text], object] | None = None,
) -> int:
    """Show the latest `replay_last` entries, then new ones, until `count` live ones or `timeout`.

    Args:
        client: a redis-py client whose socket timeout is longer than `streams.BLOCK_SECONDS`.
        show: writes one message; if it raises, the message is shown as malformed instead.
        filters: which payloads to show; malformed entries are always shown.
        backoff: how long to wait for Redis when it goes away.
        narrator: told of each reconnection attempt.
        stop: set it to end the watch soon.
        on_started: called once the watcher stands at the streams' ends.
        since: leave out the replayed entries appended before it.
        liveness: told of every entry; each account it finds stale is `say`d once.

    Returns:
        How many live (not replayed) messages were shown.

    Raises:
        RedisLostError: Redis went away and did not come back within `backoff`'s limit.
        redis.ResponseError: Redis refused to read a stream (a key of another type).
    """
    live = 0
    since_ms = 0 if since is None else int(since.timestamp() * 1000)
    present = show if liveness is None else _seen_by(liveness, show)

    def hand_on(entry: StreamEntry) -> None:
        nonlocal live
        if entry.replayed and _entry_ms(entry.entry_id) < since_ms:
            return
        message = Message(entry.stream, entry.channel, entry.entry_id, entry.replayed, None)
        try:
            message = decode(entry)
            if not filters.admit(message):
                return
            present(message)
        except (BrokenPipeError, KeyboardInterrupt):
            raise
        except Exception as exc:  # no entry, however crafted, ends the watch
            logger.debug("Entry %s of %s could not be shown", entry.entry_id, entry.stream, exc_info=True)
            show(attrs.evolve(message, payload=None, problem=f"cannot be shown: {describe_error(exc)}"))
        if not entry.replayed:
            live += 1

    def done() -> bool:
        if liveness is not None and say is not None:
            for line in liveness.stale(dt.datetime.now(dt.UTC)):
                say(line)
        return (count is not None and live >= count) or (stop is not None and stop.is_set())

    StreamFollower(client, backoff=backoff, reconnection=narrator, wake=stop).run(
        hand_on,
        replay_last=replay_last,
        done=done,
        deadline=None if timeout is None else time.monotonic() + timeout,
        on_started=on_started,
    )
    return live


def _seen_by(liveness: Liveness, show: Callable[[Message], object]) -> Callable[[Message], object]:
    def present(message: Message) -> object:
        liveness.saw(message)
        return show(message)

    return present


def _entry_ms(entry_id: str) -> int:
    """The millisecond time stamp an entry ID starts with (`1764064800000-0`)."""
    head = entry_id.partition("-")[0]
    return int(head) if head.isdigit() else 0
