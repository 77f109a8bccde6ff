"""Publishing runs to Redis: once each, in order, and never half a run.

Every run goes to pub/sub for the subscribers listening now and to a capped stream for
those that were away (spec/contract.md). A run is published as a unit that:

- does nothing when `reconciliation:published:<run_id>` exists: a re-send (redis-py's
  retry after a lost reply, the queue's retry after a failed round trip) publishes
  nothing twice — unless Redis lost that marker (restarted without its data), the one
  case where a consumer sees a run again (docs/payloads.md says how to drop it);
- does nothing unless the run sent just before it in the same round trip is in, so one
  run that fails on the server cannot be overtaken by the runs queued after it;
- checks everything that could fail (each stream's type, a stream with no IDs left)
  before it writes anything, and sets the marker only after the last payload is in.

A run of more than `MAX_PAYLOADS_PER_SCRIPT` payloads is published in parts, chained the
same way (each waits for the part before it, and the run's own marker is the last part's),
so that no single call holds Redis up for long; if a part fails, the parts already in are
not sent again and the rest follow, in order, at the next attempt.

When the server runs Lua, each part is one script call (many per pipeline round trip);
otherwise (fakeredis without `lupa`, scripting disabled by ACL) each run is one
WATCH/MULTI/EXEC transaction. Which one is found at the first round trip.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import operator
from typing import TYPE_CHECKING, Any

import attrs
import redis

from reconciliation._domain.correction import CorrectionEvent
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.fencing import Fence
from reconciliation._domain.sinks import Sent, SinkUnavailableError
from reconciliation._publishing.connection import close_client
from reconciliation._wire.payloads import (
    CORRECTION_CHANNEL,
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
    correction_payload,
    encode,
    iter_payloads,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from reconciliation._domain.sinks import Delivery

__all__ = [
    "BATCH_SEPARATOR",
    "CLUSTER_HASH_TAG",
    "CLUSTER_KEYS",
    "CORRECTION_STREAM",
    "DISCREPANCY_STREAM",
    "FENCING_FIELD",
    "HALT_STREAM",
    "MAX_PAYLOADS_PER_ROUND_TRIP",
    "MAX_PAYLOADS_PER_SCRIPT",
    "MAX_PAYLOAD_BYTES",
    "PUBLISHED_KEY_PREFIX",
    "PUBLISHED_TTL_SECONDS",
    "PUBLISH_SCRIPT",
    "RESOLVED_STREAM",
    "RESULT_STREAM",
    "RUNTIME_FIELD",
    "STANDALONE_KEYS",
    "STREAM_FIELD",
    "KeySpace",
    "PendingRun",
    "RedisSink",
]

logger = logging.getLogger(__name__)

RESULT_STREAM = "reconciliation:stream:result"
DISCREPANCY_STREAM = "reconciliation:stream:discrepancy"
RESOLVED_STREAM = "reconciliation:stream:resolved"
HALT_STREAM = "reconciliation:stream:halt"
CORRECTION_STREAM = "reconciliation:stream:correction"
STREAM_FIELD = "payload"
RUNTIME_FIELD = "runtime"
"""The stream entry's field naming the runtime that owned the account when the run was made."""
FENCING_FIELD = "fencing_token"
"""The stream entry's field holding that runtime's lease token on the account: it grows with
every change of owner, so a consumer can drop what a deposed owner sent late."""
PUBLISHED_KEY_PREFIX = "reconciliation:published:"
PUBLISHED_TTL_SECONDS = 7 * 24 * 3600
"""How long a published run is remembered: re-sends within this window are no-ops."""
MAX_PAYLOADS_PER_ROUND_TRIP = 1_000
"""A round trip takes whole runs up to this many payloads (always at least one run)."""
MAX_PAYLOADS_PER_SCRIPT = 500
"""A run of more payloads is published in parts of at most this many, one script call
each (about 1 ms of the server's time), so that no call keeps Redis from its other
clients for more than a few milliseconds; the parts are chained, in order and once."""
CLUSTER_HASH_TAG = "{reconciliation}"
"""On a Redis Cluster, every key of ours carries this hash tag: they all live in one slot,
so one script may touch them all. Channel names do not change."""

STREAM_OF = {
    RESULT_CHANNEL: RESULT_STREAM,
    DISCREPANCY_CHANNEL: DISCREPANCY_STREAM,
    RESOLVED_CHANNEL: RESOLVED_STREAM,
    HALT_CHANNEL: HALT_STREAM,
    CORRECTION_CHANNEL: CORRECTION_STREAM,
}


@attrs.frozen
class KeySpace:
    """The names of our keys: as spec/contract.md gives them, or under one cluster hash tag."""

    prefix: str = "reconciliation:"

    @classmethod
    def for_client(cls, client: object) -> KeySpace:
        return CLUSTER_KEYS if isinstance(client, redis.RedisCluster) else STANDALONE_KEYS

    def stream_of(self, channel: str) -> str:
        return self.prefix + STREAM_OF[channel].removeprefix("reconciliation:")

    @property
    def streams(self) -> dict[str, str]:
        """Each stream, by its channel."""
        return {channel: self.stream_of(channel) for channel in STREAM_OF}

    def marker(self, run_id: str) -> str:
        """The key that says the whole of run `run_id` is published."""
        return f"{self.prefix}published:{run_id}"

    def part_marker(self, run_id: str, part: int) -> str:
        """The key that says part `part` (not the last) of a large run is published."""
        return f"{self.marker(run_id)}:part:{part}"


STANDALONE_KEYS = KeySpace()
CLUSTER_KEYS = KeySpace(f"{CLUSTER_HASH_TAG}:")

_LAST_POSSIBLE_ID = "18446744073709551615-18446744073709551615"
BATCH_SEPARATOR = b"\xff"
"""Joins a batch of payloads into one script argument: a byte UTF-8 never holds, so redis-py
packs one argument for hundreds of payloads instead of one each (its per-argument work is
Python) and the script splits them."""
_BATCH_SEPARATOR_LUA = "\\255"

PUBLISH_SCRIPT = f"""
-- KEYS[1]: this run's published marker; KEYS[2]: the marker of the run sent just before
-- it in the same round trip, or KEYS[1] again for the first; KEYS[3..]: each stream the
-- part writes to, once. ARGV[1]: marker TTL (s); ARGV[2]: stream MAXLEN; ARGV[3], ARGV[4]:
-- the runtime and fencing token the run was made under ('' without a lease);
-- ARGV[5..#KEYS + 2]: the channel of each of those streams; then channel, batch pairs, a
-- batch being consecutive payloads of that channel joined by the byte 255 (never in UTF-8).
-- Returns 1 when published, 0 when already published, -1 when the run before it was not.
-- Each payload costs a PUBLISH and the shortest XADD; each stream is trimmed once.
local call, find, sub = redis.call, string.find, string.sub
if call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if KEYS[2] ~= KEYS[1] and call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local stream_of = {{}}
for i = 3, #KEYS do
  local stream = KEYS[i]
  local kind = call('TYPE', stream)['ok']
  if kind == 'stream' then
    local info = call('XINFO', 'STREAM', stream)
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' and info[j + 1] == '{_LAST_POSSIBLE_ID}' then
        return redis.error_reply('ERR the stream ' .. stream .. ' has no IDs left')
      end
    end
  elseif kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. stream .. ' holds a ' .. kind .. ', not a stream')
  end
  stream_of[ARGV[i + 2]] = stream
end
local runtime, token = ARGV[3], ARGV[4]
for i = #KEYS + 3, #ARGV, 2 do
  local channel, batch = ARGV[i], ARGV[i + 1]
  local stream = stream_of[channel]
  local start = 1
  repeat
    local stop = find(batch, '{_BATCH_SEPARATOR_LUA}', start, true)
    local payload = sub(batch, start, (stop or 0) - 1)
    call('PUBLISH', channel, payload)
    if runtime == '' then
      call('XADD', stream, '*', '{STREAM_FIELD}', payload)
    else
      call('XADD', stream, '*', '{STREAM_FIELD}', payload, '{RUNTIME_FIELD}', runtime, '{FENCING_FIELD}', token)
    end
    start = (stop or 0) + 1
  until stop == nil
end
for i = 3, #KEYS do
  call('XTRIM', KEYS[i], 'MAXLEN', '~', ARGV[2])
end
call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""

SCRIPT_SHA = hashlib.sha1(PUBLISH_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_PUBLISHED, _ALREADY_PUBLISHED = 1, 0

_BLOCKING_ERRORS = (
    redis.exceptions.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.NoScriptError,
    redis.exceptions.NoPermissionError,
)
_BLOCKING_REPLIES = ("BUSY", "WRONGTYPE", "the stream", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN")
"""Error replies that hold up every run, not just this one: the server is not ready
(loading, out of memory, a cluster without all its slots, a replica, a busy script), the
service may not write (an ACL), or a stream key is unusable (not a stream, no IDs left)
until an operator fixes it. The runs stay queued, in order, and the error is reported.
redis-py turns most of these into their own exception classes and strips the code from
the text, so they are told by class; the others, and the cluster codes that redis-py
before 6.0 leaves in a plain ResponseError, by the start of the reply."""

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""A payload larger than this is refused before it is sent (Redis would drop the connection
on a bulk string past its proto-max-bulk-len, and every retry with it): the run is set aside."""


def _pairs(value: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(value)


@attrs.frozen
class PendingRun:
    """One run's encoded payloads, (channel, JSON) in publish order; or a correction
    event's one payload, identified (`run_id`, its marker) by its event id."""

    run_id: str
    payloads: tuple[tuple[str, str], ...] = attrs.field(converter=_pairs)
    fence: Fence | None = None
    """The lease the run was made under, added to each of its stream entries."""


class RedisSink:
    """Delivers runs to Redis; owned by one delivery actor, never called concurrently.

    Args:
        connect: makes our own synchronous client (`connection.publishing_client`); called
            at the first send, and again after `close`, never before it is needed (a
            cluster client connects as it is made).
        stream_maxlen: the approximate length (`MAXLEN ~`) the streams are capped at.
    """

    name = "redis"

    def __init__(self, connect: Callable[[], redis.Redis | redis.RedisCluster], *, stream_maxlen: int) -> None:
        self._connect = connect
        self._connection: redis.Redis | redis.RedisCluster | None = None
        self._stream_maxlen = stream_maxlen
        self._scripting: bool | None = None
        self._closed = False
        self._keys = STANDALONE_KEYS
        self._find_slot_again = False
        """On a cluster: ask it again which master holds our slot before the next send
        (after a master went away, a failover may have moved the slot)."""

    @property
    def scripting(self) -> bool | None:
        """Whether runs go by Lua script (True) or transaction (False); None before the first try."""
        return self._scripting

    def prepare(self, run: Delivery) -> PendingRun:
        if isinstance(run, CorrectionEvent):
            return PendingRun(str(run.event_id), ((CORRECTION_CHANNEL, encode(correction_payload(run))),), run.fence)
        return PendingRun(str(run.result.run_id), iter_payloads(run.result, run.ageing), run.fence)

    def weight(self, item: PendingRun) -> int:
        return len(item.payloads)

    def encode(self, item: PendingRun) -> bytes:
        """For the outbox journal: the run id, every (channel, payload) and the lease's fence, as JSON."""
        fence = None if item.fence is None else [item.fence.runtime, item.fence.token]
        return json.dumps({"run_id": item.run_id, "payloads": item.payloads, "fence": fence}, ensure_ascii=False).encode()

    def decode(self, data: bytes) -> PendingRun:
        """A run `encode` wrote, exactly as it was queued.

        Raises:
            ValueError: `data` is not one.
        """
        try:
            document = json.loads(data)
            run_id, payloads, fence = document["run_id"], document["payloads"], document.get("fence")
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            msg = f"not a queued run ({describe_error(error)})"
            raise ValueError(msg) from error
        if not isinstance(run_id, str) or not isinstance(payloads, list) or not all(map(_is_pair, payloads)):
            msg = "not a queued run (a run id and a list of channel, payload pairs)"
            raise ValueError(msg)
        if fence is not None and not _is_fence(fence):
            msg = "not a queued run (its fence is not a runtime name and a token)"
            raise ValueError(msg)
        return PendingRun(
            run_id, ((channel, payload) for channel, payload in payloads), None if fence is None else Fence(*fence)
        )

    def send(self, items: Sequence[PendingRun]) -> Sent:
        if self._closed:
            msg = "the publishing connection is closed: the service has stopped"
            raise SinkUnavailableError(msg)
        oversized = next((index for index, run in enumerate(items) if _too_large(run)), None)
        if oversized == 0:
            return Sent(0, refused=f"a payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        if oversized is not None:
            items = items[:oversized]
        try:
            self._ready_connection()
            if self._scripting is None:
                self._scripting = self._detect_scripting()
            if self._scripting:
                return self._send_by_script(items)
            return self._send_by_transaction(items)
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.RedisClusterException, OSError) as error:
            self._find_slot_again = True
            raise SinkUnavailableError(describe_error(error)) from error
        except ValueError as error:
            if self._closed:  # the socket was closed under the call, at stop: not the run's fault
                raise SinkUnavailableError(describe_error(error)) from error
            raise

    def _ready_connection(self) -> None:
        if self._connection is None:
            self._connection = self._connect()
            self._keys = KeySpace.for_client(self._connection)
        elif self._find_slot_again and isinstance(self._connection, redis.RedisCluster):
            self._connection.nodes_manager.initialize()
        self._find_slot_again = False

    def close(self) -> None:
        """Close our connections; a call stalled on one of them ends with an error, and
        nothing is sent afterwards."""
        self._closed = True
        client, self._connection = self._connection, None
        close_client(client)

    def _client(self) -> redis.Redis:
        """Who publishes: our client, or on a cluster the connection to the master that
        holds our keys' slot (one slot, so one master takes every call of a run)."""
        connection = self._connection
        if connection is None:
            msg = "not connected"
            raise redis.ConnectionError(msg)
        if isinstance(connection, redis.RedisCluster):
            node = connection.get_node_from_key(self._keys.marker(""))  # type: ignore[no-untyped-call,unused-ignore]
            return connection.get_redis_connection(node)
        return connection

    def _detect_scripting(self) -> bool:
        try:
            self._client().script_load(PUBLISH_SCRIPT)
        except redis.ResponseError as error:
            logger.warning(
                "This Redis does not run Lua scripts (%s): each run is published in a MULTI/EXEC "
                "transaction instead, with the same order and de-duplication",
                describe_error(error),
            )
            return False
        return True

    def _send_by_script(self, items: Sequence[PendingRun]) -> Sent:
        sent = self._script_round_trip(items)
        if sent is None:
            logger.info("Redis lost the publish script (a restart?); loading it again")
            self._client().script_load(PUBLISH_SCRIPT)
            sent = self._script_round_trip(items)
        return sent or Sent(0)

    def _parts(self, run: PendingRun) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        """The run's payloads in parts of at most `MAX_PAYLOADS_PER_SCRIPT`, each with its
        marker: the run's own for the last part."""
        payloads = run.payloads
        size = MAX_PAYLOADS_PER_SCRIPT
        starts = range(0, max(len(payloads), 1), size)
        return [
            (
                self._keys.marker(run.run_id) if part == len(starts) - 1 else self._keys.part_marker(run.run_id, part),
                payloads[start : start + size],
            )
            for part, start in enumerate(starts)
        ]

    def _script_round_trip(self, items: Sequence[PendingRun]) -> Sent | None:
        """One pipeline of script calls, a part each; None when Redis did not know the script."""
        pipeline = self._client().pipeline(transaction=False)
        previous: str | None = None
        parts_per_run = []
        for run in items:
            parts = self._parts(run)
            parts_per_run.append(len(parts))
            for marker, payloads in parts:
                channels = list(dict.fromkeys(map(_channel_of, payloads)))
                keys = [marker, previous or marker, *map(self._keys.stream_of, channels)]
                args: list[str | int | bytes] = [
                    PUBLISHED_TTL_SECONDS, self._stream_maxlen, *_fence_args(run.fence), *channels
                ]
                args.extend(_batches(payloads))
                pipeline.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
                previous = marker
        replies = iter(pipeline.execute(raise_on_error=False))
        delivered = 0
        for count in parts_per_run:
            for reply in itertools.islice(replies, count):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    return Sent(delivered) if delivered else None
                if isinstance(reply, Exception):
                    return self._refused_or_unavailable(delivered, reply)
                if reply not in {_PUBLISHED, _ALREADY_PUBLISHED}:
                    return Sent(delivered)
            delivered += 1
        return Sent(delivered)

    def _send_by_transaction(self, items: Sequence[PendingRun]) -> Sent:
        for index, run in enumerate(items):
            try:
                for marker, payloads in self._parts(run):
                    self._publish_in_transaction(marker, payloads, run.fence)
            except redis.ResponseError as error:
                return self._refused_or_unavailable(index, error)
        return Sent(len(items))

    def _publish_in_transaction(
        self, marker: str, payloads: tuple[tuple[str, str], ...], fence: Fence | None
    ) -> None:
        streams = sorted({self._keys.stream_of(channel) for channel, _ in payloads})
        with self._client().pipeline(transaction=True) as pipeline:
            while True:
                try:
                    pipeline.watch(marker, *streams)  # type: ignore[no-untyped-call,unused-ignore]
                    if pipeline.exists(marker):
                        return
                    for stream in streams:
                        _check_stream(pipeline, stream)
                    pipeline.multi()
                    for channel, payload in payloads:
                        pipeline.publish(channel, payload)
                        pipeline.xadd(
                            self._keys.stream_of(channel),
                            _entry(payload, fence),
                            maxlen=self._stream_maxlen,
                            approximate=True,
                        )
                    pipeline.set(marker, "1", ex=PUBLISHED_TTL_SECONDS)
                    pipeline.execute()
                except redis.WatchError:
                    continue
                return

    def _refused_or_unavailable(self, delivered: int, error: Exception) -> Sent:
        text = describe_error(error)
        moved = isinstance(error, redis.exceptions.MovedError | redis.exceptions.AskError)
        if moved:
            self._find_slot_again = True
            text = f"the cluster moved the slot of our keys to another master ({text}): following it"
        if moved or isinstance(error, _BLOCKING_ERRORS) or str(error).startswith(_BLOCKING_REPLIES):
            if delivered:
                return Sent(delivered)
            raise SinkUnavailableError(text) from error
        return Sent(delivered, refused=text)


def _is_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == len(("channel", "payload")) and all(isinstance(v, str) for v in value)


def _is_fence(value: object) -> bool:
    """A runtime name and a token, as JSON gives them (an int token, not a bool)."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def _batches(payloads: Iterable[tuple[str, str]]) -> Iterator[str | bytes]:
    """Channel, batch for each run of consecutive payloads on one channel (the script's ARGV)."""
    for channel, pairs in itertools.groupby(payloads, key=_channel_of):
        yield channel
        yield BATCH_SEPARATOR.join(map(str.encode, map(_text_of, pairs)))


_channel_of = operator.itemgetter(0)
_text_of = operator.itemgetter(1)


def _fence_args(fence: Fence | None) -> tuple[str, str]:
    return ("", "") if fence is None else (fence.runtime, str(fence.token))


def _entry(payload: str, fence: Fence | None) -> dict[Any, Any]:
    """A stream entry's fields: the payload, and the lease it was made under when there is one."""
    if fence is None:
        return {STREAM_FIELD: payload}
    return {STREAM_FIELD: payload, RUNTIME_FIELD: fence.runtime, FENCING_FIELD: str(fence.token)}


def _too_large(run: PendingRun) -> bool:
    return any(len(payload) > MAX_PAYLOAD_BYTES // 4 and len(payload.encode()) > MAX_PAYLOAD_BYTES for _, payload in run.payloads)


def _check_stream(client: redis.client.Pipeline, stream: str) -> None:
    """What the script checks before writing, for the transaction path.

    Raises:
        redis.ResponseError: the key is not a stream, or the stream has no IDs left.
    """
    kind = client.type(stream)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "none":
        return
    if kind != "stream":
        msg = f"WRONGTYPE {stream} holds a {kind}, not a stream"
        raise redis.ResponseError(msg)
    info: dict[Any, Any] = client.xinfo_stream(stream)
    last = info.get("last-generated-id", info.get(b"last-generated-id"))
    last = last.decode() if isinstance(last, bytes) else last
    if last == _LAST_POSSIBLE_ID:
        msg = f"the stream {stream} has no IDs left"
        raise redis.ResponseError(msg)
