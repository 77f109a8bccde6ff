"""Follow the published runs, discrepancies, resolved breaks and halts live, after a replay.

The watcher subscribes to the four channels first, then reads the last entries of
their streams, then shows live messages: nothing published in between is lost, and a payload
seen in both the replay and the channel is shown once (it is de-duplicated on its
identity, see docs/payloads.md).
"""

from __future__ import annotations

import collections
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import attrs

from reconciliation._cli.render import payload_identity
from reconciliation._publishing.payloads import (
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
)
from reconciliation._publishing.redis_sink import (
    DISCREPANCY_STREAM,
    HALT_STREAM,
    RESOLVED_STREAM,
    RESULT_STREAM,
    STREAM_FIELD,
)

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    import redis

__all__ = [
    "CHANNELS",
    "Message",
    "replay",
    "watch",
]

logger = logging.getLogger(__name__)

_STREAMS = {
    RESULT_STREAM: RESULT_CHANNEL,
    DISCREPANCY_STREAM: DISCREPANCY_CHANNEL,
    RESOLVED_STREAM: RESOLVED_CHANNEL,
    HALT_STREAM: HALT_CHANNEL,
}
CHANNELS = tuple(_STREAMS.values())

_POLL_SECONDS = 0.5
SUBSCRIBE_TIMEOUT_SECONDS = 5.0


@attrs.frozen
class Message:
    """One payload as received: its channel, its raw JSON, and the parsed object (None if not JSON)."""

    channel: str
    raw: str
    payload: dict[str, Any] | None
    replayed: bool


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _message(channel: str, raw: str, *, replayed: bool) -> Message:
    try:
        parsed = json.loads(raw)
    except ValueError:
        logger.warning("A message on %s is not JSON: %.200s", channel, raw)
        parsed = None
    return Message(channel, raw, parsed if isinstance(parsed, dict) else None, replayed)


def _stream_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return (int(millis), int(sequence or 0))


def replay(client: redis.Redis, last: int) -> list[Message]:
    """The `last` most recent entries of the four streams together, oldest first."""
    if last <= 0:
        return []
    entries: list[tuple[tuple[int, int], Message]] = []
    for stream, channel in _STREAMS.items():
        for entry_id, fields in client.xrevrange(stream, count=last) or []:
            raw = None if fields is None else fields.get(STREAM_FIELD.encode(), fields.get(STREAM_FIELD))
            if entry_id is None or raw is None:
                logger.warning("An entry of %s has no %s field", stream, STREAM_FIELD)
                continue
            entries.append((_stream_order(_text(entry_id)), _message(channel, _text(raw), replayed=True)))
    entries.sort(key=lambda entry: entry[0])
    return [message for _, message in entries[-last:]]


def watch(
    client: redis.Redis,
    show: Callable[[Message], None],
    *,
    replay_last: int = 0,
    count: int | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    on_subscribed: Callable[[], None] | None = None,
) -> int:
    """Show replayed, then live messages until `count` live ones arrived or `timeout` passed.

    Args:
        client: a connected redis-py client.
        show: called with each message, in order, in this thread.
        replay_last: how many of the streams' latest entries to show first.
        count: stop after this many live messages (None: never).
        timeout: stop after this many seconds (None: never).
        stop: stop soon after this event is set.
        on_subscribed: called once the subscriptions are confirmed, before the replay.

    Returns:
        How many live messages were shown.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    try:
        pubsub.subscribe(*CHANNELS)
        early = _await_subscriptions(pubsub, len(CHANNELS))
        if on_subscribed is not None:
            on_subscribed()
        seen = _RecentIdentities()
        for message in replay(client, replay_last):
            if message.payload is not None:
                seen.add(payload_identity(message.channel, message.payload))
            show(message)
        live = 0
        while (count is None or live < count) and not (stop is not None and stop.is_set()):
            if early:
                raw: dict[str, Any] | None = early.pop(0)
            else:
                wait = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
                if wait <= 0:
                    break
                raw = pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if raw is None or raw.get("type") != "message":
                continue
            message = _message(_text(raw["channel"]), _text(raw["data"]), replayed=False)
            if message.payload is not None and not seen.add(
                payload_identity(message.channel, message.payload)
            ):
                continue
            show(message)
            live += 1
        return live
    finally:
        pubsub.close()


def _await_subscriptions(pubsub: redis.client.PubSub, expected: int) -> list[dict[str, Any]]:
    """Wait for Redis to confirm the subscriptions; return the messages that came meanwhile."""
    confirmed = 0
    early: list[dict[str, Any]] = []
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
    while confirmed < expected:
        if time.monotonic() > deadline:
            msg = f"Redis did not confirm the subscriptions within {SUBSCRIBE_TIMEOUT_SECONDS:g} s"
            raise TimeoutError(msg)
        raw = pubsub.get_message(timeout=_POLL_SECONDS)
        if raw is None:
            continue
        if raw.get("type") == "subscribe":
            confirmed += 1
        else:
            early.append(raw)
    return early


class _RecentIdentities:
    """The identities of the last `size` payloads shown: enough to drop a replayed or retried one."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._order: collections.deque[tuple[str | None, ...]] = collections.deque()
        self._members: set[tuple[str | None, ...]] = set()

    def add(self, identity: tuple[str | None, ...]) -> bool:
        """Remember `identity`; False if it was already there."""
        if identity in self._members:
            return False
        self._members.add(identity)
        self._order.append(identity)
        if len(self._order) > self._size:
            self._members.discard(self._order.popleft())
        return True
