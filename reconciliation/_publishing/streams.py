"""Following the Redis streams in publish order, through Redis restarts.

Every payload is appended to a capped stream (docs/payloads.md). A reader keeps, per
stream, the ID of the last entry it handed on (its cursor) and asks Redis with one
`XREAD BLOCK` on all the streams for what came after: no polling, and after Redis
drops and comes back it resumes right after the last entry it handed on.

The streams are merged in publish order. An entry ID is a millisecond time stamp
and a sequence number counted per stream, and one run's payloads are appended by one
script call (during which Redis's clock stands still; a run of more than 500 payloads
by several, one after the other) in the order result, discrepancies, resolved breaks,
halts. So entries are ordered by millisecond, then by that stream rank, then by
sequence: a run's payloads come out in the order they were published. (Two runs published within the same millisecond come out results first,
then discrepancies, and so on; a correction's step, published on its own after the run
it came from, comes last.) When `XREAD` returns a full batch for a stream, the
entries past that batch's last one are left for the next read, so a backlog is still
handed on in order.

On a Redis Cluster (a `redis.RedisCluster` client) the streams carry the `{reconciliation}`
hash tag, so that one `XREAD` reads them all from the one master that holds them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import redis

from reconciliation._domain.backoff import Backoff
from reconciliation._publishing.redis_sink import (
    FENCING_FIELD,
    RUNTIME_FIELD,
    STREAM_FIELD,
    STREAM_OF,
    KeySpace,
)

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterable

__all__ = [
    "BLOCK_SECONDS",
    "READ_COUNT",
    "STREAMS",
    "RedisLostError",
    "StreamCursor",
    "StreamEntry",
    "StreamFollower",
]

STREAMS: dict[str, str] = {stream: channel for channel, stream in STREAM_OF.items()}
"""Each stream and the pub/sub channel that carries the same payloads, in publish order."""

_RANK = {channel: rank for rank, channel in enumerate(STREAMS.values())}
_BEFORE_EVERYTHING = "0-0"

READ_COUNT = 500
"""The most entries one `XREAD` asks for per stream."""
BLOCK_SECONDS = 5.0
"""The longest one `XREAD BLOCK` waits; a reader's socket timeout must be longer."""


@attrs.frozen
class StreamEntry:
    """One stream entry as Redis returned it: where it is, its `payload` field (None if it has none),
    and the `runtime` and `fencing_token` fields of the lease it was made under (None when absent)."""

    stream: str
    entry_id: str
    raw: bytes | None
    replayed: bool
    channel: str = attrs.field(default=attrs.Factory(lambda entry: channel_of(entry.stream), takes_self=True))
    """The pub/sub channel that carries the same payloads."""
    runtime: bytes | None = None
    fencing_token: bytes | None = None

    @property
    def order(self) -> tuple[int, int, int]:
        """Publish order across the streams: (millisecond, stream rank, sequence)."""
        millis, sequence = entry_order(self.entry_id)
        return (millis, _RANK[self.channel], sequence)


def channel_of(stream: str) -> str:
    """`reconciliation:stream:result` (or `{reconciliation}:stream:result`) as `reconciliation:result`."""
    _, _, kind = stream.rpartition(":stream:")
    return f"reconciliation:{kind}"


def entry_order(entry_id: str) -> tuple[int, int]:
    """`1764064800000-3` as (1764064800000, 3): stream IDs compare as these pairs."""
    millis, _, sequence = entry_id.partition("-")
    return (int(millis), int(sequence or 0))


def _text(value: bytes | str) -> str:
    return value.decode("ascii", errors="replace") if isinstance(value, bytes) else value


def _field(fields: Any, name: str) -> bytes | None:
    if not isinstance(fields, dict):
        return None
    raw = fields.get(name.encode(), fields.get(name))
    if isinstance(raw, str):
        return raw.encode("utf-8", errors="surrogateescape")
    return raw if isinstance(raw, bytes) else None


def _entries(stream: str, channel: str, rows: Iterable[Any], *, replayed: bool) -> list[StreamEntry]:
    return [
        StreamEntry(
            stream,
            _text(entry_id),
            _field(fields, STREAM_FIELD),
            replayed,
            channel,
            runtime=_field(fields, RUNTIME_FIELD),
            fencing_token=_field(fields, FENCING_FIELD),
        )
        for entry_id, fields in rows or ()
        if entry_id is not None
    ]


class StreamCursor:
    """Where a reader is in each of the streams, and the reads that move it on.

    Not thread-safe: one reader owns it.
    """

    def __init__(self, client: redis.Redis | redis.RedisCluster, *, count: int = READ_COUNT) -> None:
        self._client = client
        self._count = count
        self._channels = {stream: channel for channel, stream in KeySpace.for_client(client).streams.items()}
        """Each stream we read, by its name on this server, and its channel."""
        self._positions: dict[str, str] | None = None

    @property
    def positioned(self) -> bool:
        return self._positions is not None

    def last_handed_on(self) -> str | None:
        """The ID of the newest entry handed on so far, or of the stream ends it started at."""
        if not self._positions:
            return None
        return max(self._positions.values(), key=entry_order)

    def start(self, replay_last: int = 0) -> list[StreamEntry]:
        """Stand at the streams' ends, and return their `replay_last` latest entries, merged, oldest first.

        Raises:
            redis.RedisError: Redis could not answer; nothing has moved.
        """
        tails: dict[str, list[StreamEntry]] = {}
        for stream, channel in self._channels.items():
            rows = self._client.xrevrange(stream, count=max(replay_last, 1))
            tails[stream] = _entries(stream, channel, reversed(rows or ()), replayed=True)
        positions = {stream: (rows[-1].entry_id if rows else _BEFORE_EVERYTHING) for stream, rows in tails.items()}
        merged = sorted((entry for rows in tails.values() for entry in rows), key=lambda entry: entry.order)
        self._positions = positions
        return merged[-replay_last:] if replay_last > 0 else []

    def read(self, block_seconds: float) -> list[StreamEntry]:
        """The entries appended after the cursor, in publish order, waiting up to `block_seconds` for one.

        Raises:
            redis.RedisError: Redis could not answer; the cursor has not moved.
        """
        if self._positions is None:
            msg = "start() the cursor before reading"
            raise RuntimeError(msg)
        streams: dict[Any, Any] = dict(self._positions)
        answer = self._client.xread(streams, count=self._count, block=max(1, round(block_seconds * 1000)))
        batches = answer.items() if isinstance(answer, dict) else (answer or ())
        entries: list[StreamEntry] = []
        horizon: tuple[int, int, int] | None = None
        for name, rows in batches:
            stream = _text(name)
            channel = self._channels.get(stream)
            if channel is None:
                continue
            batch = _entries(stream, channel, rows, replayed=False)
            entries.extend(batch)
            if len(batch) >= self._count:
                last = batch[-1].order
                horizon = last if horizon is None else min(horizon, last)
        if horizon is not None:
            entries = [entry for entry in entries if entry.order <= horizon]
        entries.sort(key=lambda entry: entry.order)
        for entry in entries:
            self._positions[entry.stream] = entry.entry_id
        return entries


class RedisLostError(Exception):
    """Redis went away and did not come back within the reader's `Backoff.give_up_after_seconds`."""

    def __init__(self, attempts: int, seconds: float, error: BaseException) -> None:
        super().__init__(
            f"it did not come back within {seconds:.0f} s ({attempts} attempts); last error: {error}"
        )
        self.attempts = attempts
        self.seconds = seconds
        self.error = error


class Reconnection(Protocol):
    """Told about an outage as it happens, so a reader can say so."""

    def lost(self, attempt: int, retry_in: float, error: BaseException) -> None: ...

    def back(self, resume_after: str | None) -> None: ...


class StreamFollower:
    """Hands on the streams' entries, in publish order, through Redis outages.

    Args:
        client: a redis-py client whose socket timeout is longer than `BLOCK_SECONDS`.
        backoff: how to wait for Redis when it goes away, and when to give up.
        reconnection: told of each failed attempt and of the return.
        wake: set it to end a pause between attempts at once (and let `done` say why).
        block_seconds: the longest one read waits for an entry, so how soon `done()`
            is seen when nothing arrives; at most `BLOCK_SECONDS`.
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        backoff: Backoff = Backoff(),  # noqa: B008 - a frozen value
        reconnection: Reconnection | None = None,
        wake: threading.Event | None = None,
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        self._client = client
        self._cursor = StreamCursor(client)
        self._backoff = backoff
        self._reconnection = reconnection
        self._wake = wake
        self._block_seconds = min(block_seconds, BLOCK_SECONDS)
        self._outage_started: float | None = None
        self._attempt = 0

    def run(
        self,
        hand_on: Callable[[StreamEntry], None],
        *,
        replay_last: int = 0,
        done: Callable[[], bool] = lambda: False,
        deadline: float | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        """Hand on the latest `replay_last` entries, then every new one, until `done()` or `deadline`.

        Args:
            hand_on: called with each entry, in publish order, in this thread.
            replay_last: how many of the streams' latest entries to hand on first.
            done: checked after every entry and every read; True ends the reading.
            deadline: a `time.monotonic()` at which to end; None: no end.
            on_started: called once, when the cursor stands at the streams' ends.

        Raises:
            RedisLostError: Redis stayed away longer than the backoff allows.
            redis.ResponseError: Redis refused a command (a stream key holding another type).
        """
        while not done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                entries = self._next(replay_last, remaining, on_started)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._pause(exc, remaining)
                continue
            for entry in entries:
                hand_on(entry)
                if done():
                    return

    def _next(
        self, replay_last: int, remaining: float | None, on_started: Callable[[], None] | None
    ) -> list[StreamEntry]:
        if self._outage_started is not None:
            self._client.ping()
            self._outage_started, self._attempt = None, 0
            if self._reconnection is not None:
                self._reconnection.back(self._cursor.last_handed_on())
        if not self._cursor.positioned:
            entries = self._cursor.start(replay_last)
            if on_started is not None:
                on_started()
            return entries
        block = self._block_seconds if remaining is None else min(self._block_seconds, remaining)
        return self._cursor.read(block)

    def _pause(self, error: BaseException, remaining: float | None) -> None:
        """Wait before the next attempt, or give up when the outage has lasted too long."""
        now = time.monotonic()
        if self._outage_started is None:
            self._outage_started = now
        self._attempt += 1
        pause = self._backoff.delay(self._attempt)
        limit = self._backoff.give_up_after_seconds
        if limit is not None:
            left = self._outage_started + limit - now
            if left <= 0:
                raise RedisLostError(self._attempt, now - self._outage_started, error) from error
            pause = min(pause, left)
        if remaining is not None:
            pause = min(pause, remaining)
        if self._reconnection is not None:
            self._reconnection.lost(self._attempt, pause, error)
        if self._wake is not None:
            self._wake.wait(pause)
        else:
            time.sleep(pause)
