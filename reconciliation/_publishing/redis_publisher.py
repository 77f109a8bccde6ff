"""Publishing runs to Redis so that no alert is lost, doubled or split.

Every run goes to pub/sub for the subscribers listening now and to a capped stream for
those that were away (spec/contract.md). `submit` only queues a run's payloads in the
`Outbox`; `deliver` sends the queue, oldest first, in one pipeline round trip and says
when to try again if Redis could not take it. A run is never waited on.

Each run is published by one Lua script call, atomic on the server:

- it first sets `reconciliation:published:<run_id>` (NX, with a TTL) and does nothing
  more if that key was already there, so a call that redis-py re-sends after a lost
  reply, or that the outbox re-sends after a failed round trip, publishes nothing twice;
- it publishes nothing unless the run before it in the same round trip was published,
  so one run that fails on the server cannot be overtaken by the runs queued after it;
- it checks the streams' types before writing anything, so it cannot stop half-way.

The publisher is a plain object owned by one actor and never called concurrently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random as _random
from typing import TYPE_CHECKING

import attrs
import redis

from reconciliation._domain.error_text import describe_error
from reconciliation._publishing.outbox import Outbox, PendingRun
from reconciliation._publishing.payloads import (
    DISCREPANCY_CHANNEL,
    HALT_CHANNEL,
    RESOLVED_CHANNEL,
    RESULT_CHANNEL,
    iter_payloads,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciliation._domain.ageing import AgeingUpdate
    from reconciliation._domain.models import ReconciliationResult
    from reconciliation._runtime.clock import Clock

__all__ = [
    "DISCREPANCY_CHANNEL",
    "DISCREPANCY_STREAM",
    "HALT_CHANNEL",
    "HALT_STREAM",
    "MAX_PAYLOADS_PER_ROUND_TRIP",
    "PUBLISHED_KEY_PREFIX",
    "PUBLISHED_TTL_SECONDS",
    "PUBLISH_SCRIPT",
    "RESOLVED_CHANNEL",
    "RESOLVED_STREAM",
    "RESULT_CHANNEL",
    "RESULT_STREAM",
    "RETRY_BASE_SECONDS",
    "STREAM_FIELD",
    "PublisherHealth",
    "RedisPublisher",
]

logger = logging.getLogger(__name__)

RESULT_STREAM = "reconciliation:stream:result"
DISCREPANCY_STREAM = "reconciliation:stream:discrepancy"
RESOLVED_STREAM = "reconciliation:stream:resolved"
HALT_STREAM = "reconciliation:stream:halt"
STREAM_FIELD = "payload"
PUBLISHED_KEY_PREFIX = "reconciliation:published:"
PUBLISHED_TTL_SECONDS = 7 * 24 * 3600
"""How long a published run is remembered: re-sends within this window are no-ops."""
MAX_PAYLOADS_PER_ROUND_TRIP = 1_000
"""A round trip takes whole runs up to this many payloads (always at least one run)."""
RETRY_BASE_SECONDS = 0.1

_STREAM_OF = {
    RESULT_CHANNEL: RESULT_STREAM,
    DISCREPANCY_CHANNEL: DISCREPANCY_STREAM,
    RESOLVED_CHANNEL: RESOLVED_STREAM,
    HALT_CHANNEL: HALT_STREAM,
}

PUBLISH_SCRIPT = """
-- KEYS[1]: this run's published marker; KEYS[2]: the marker of the run sent just before
-- it in the same round trip, or KEYS[1] again for the first; KEYS[3..]: each payload's
-- stream. ARGV[1]: marker TTL (s); ARGV[2]: stream MAXLEN; then channel, payload pairs.
-- Returns 1 when published, 0 when already published, -1 when the run before it was not.
local checked = {}
for i = 3, #KEYS do
  if not checked[KEYS[i]] then
    local kind = redis.call('TYPE', KEYS[i])['ok']
    if kind ~= 'stream' and kind ~= 'none' then
      return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a stream')
    end
    checked[KEYS[i]] = true
  end
end
if KEYS[2] ~= KEYS[1] and redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 3, #KEYS do
  local channel, payload = ARGV[2 * i - 3], ARGV[2 * i - 2]
  redis.call('PUBLISH', channel, payload)
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', 'payload', payload)
end
return 1
"""

_SCRIPT_SHA = hashlib.sha1(PUBLISH_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_PUBLISHED, _ALREADY_PUBLISHED = 1, 0


@attrs.frozen
class PublisherHealth:
    """What an operator needs to see about the way to Redis."""

    outbox_depth: int
    """Runs waiting to be delivered."""
    outbox_payloads: int
    delivered_runs: int
    """Runs taken off the outbox because Redis has them, including already_published_runs."""
    delivered_payloads: int
    dropped_runs: int
    """Runs lost, undelivered, because the outbox was full."""
    dropped_payloads: int
    already_published_runs: int
    """Runs Redis already had (a re-send after a lost reply), so published nothing twice."""
    last_error: str | None
    last_error_at: dt.datetime | None
    last_delivery_at: dt.datetime | None
    redis_reachable: bool
    """False from a round trip that could not reach Redis until one that did."""


class RedisPublisher:
    """Queues runs and delivers them to Redis, once each and in order.

    Args:
        redis: the client; its own retries may re-send a round trip, which is harmless.
        stream_maxlen: the approximate length (`MAXLEN ~`) the streams are capped at.
        outbox_max_runs: how many undelivered runs are kept; beyond, the oldest is dropped.
        retry_max_seconds: the longest delay `deliver` asks for between two attempts.
        clock: gives the times in `health()`.
        random: `uniform(a, b)`, for the backoff's jitter.
    """

    def __init__(
        self,
        redis: redis.Redis,
        *,
        stream_maxlen: int,
        outbox_max_runs: int,
        retry_max_seconds: float,
        clock: Clock,
        random: Callable[[float, float], float] = _random.uniform,
    ) -> None:
        self._redis = redis
        self._stream_maxlen = stream_maxlen
        self._retry_max_seconds = retry_max_seconds
        self._clock = clock
        self._uniform = random
        self._outbox = Outbox(outbox_max_runs)
        self._delivered_runs = 0
        self._delivered_payloads = 0
        self._already_published_runs = 0
        self._failed_attempts = 0
        self._last_error: str | None = None
        self._last_error_at: dt.datetime | None = None
        self._last_delivery_at: dt.datetime | None = None
        self._reachable = True

    def submit(self, result: ReconciliationResult, ageing: AgeingUpdate | None = None) -> None:
        """Queue the run's payloads (with its breaks' ages, if given) for the next `deliver`;
        Redis is not touched."""
        self._outbox.append(PendingRun(str(result.run_id), iter_payloads(result, ageing)))

    def deliver(self) -> float | None:
        """Send the oldest queued runs in one round trip.

        Returns:
            None when nothing is left to send; 0.0 when more runs are queued and Redis
            is taking them (call again at once); otherwise the delay in seconds before
            the next attempt, growing with each failure up to `retry_max_seconds`.
            Redis errors are never raised: `health()` reports them.
        """
        if not self._outbox:
            return None
        batch = self._outbox.head(MAX_PAYLOADS_PER_ROUND_TRIP)
        try:
            replies = self._send(batch)
        except (redis.RedisError, OSError) as error:
            self._reachable = False
            return self._failed(error)
        self._reachable = True
        delivered = 0
        failure: Exception | None = None
        for reply in replies:
            if isinstance(reply, Exception):
                failure = reply
                break
            if reply not in {_PUBLISHED, _ALREADY_PUBLISHED}:
                break
            delivered += 1
            self._already_published_runs += reply == _ALREADY_PUBLISHED
        self._delivered(self._outbox.remove_head(delivered))
        if isinstance(failure, redis.exceptions.NoScriptError):
            logger.debug("Redis lost the publish script mid round trip; the next one loads it again")
            return 0.0
        if failure is not None:
            return self._failed(failure)
        self._recovered(delivered)
        return 0.0 if self._outbox else None

    def health(self) -> PublisherHealth:
        return PublisherHealth(
            outbox_depth=len(self._outbox),
            outbox_payloads=self._outbox.payload_count,
            delivered_runs=self._delivered_runs,
            delivered_payloads=self._delivered_payloads,
            dropped_runs=self._outbox.dropped_runs,
            dropped_payloads=self._outbox.dropped_payloads,
            already_published_runs=self._already_published_runs,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            last_delivery_at=self._last_delivery_at,
            redis_reachable=self._reachable,
        )

    def _send(self, batch: list[PendingRun]) -> list[object]:
        """One script call per run; the first is an EVAL, which also loads the script."""
        pipeline = self._redis.pipeline(transaction=False)
        previous: str | None = None
        for index, run in enumerate(batch):
            marker = PUBLISHED_KEY_PREFIX + run.run_id
            keys = [marker, previous or marker, *(_STREAM_OF[channel] for channel, _ in run.payloads)]
            args: list[str | int] = [PUBLISHED_TTL_SECONDS, self._stream_maxlen]
            args.extend(part for pair in run.payloads for part in pair)
            if index == 0:
                pipeline.eval(PUBLISH_SCRIPT, len(keys), *keys, *args)
            else:
                pipeline.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
            previous = marker
        return list(pipeline.execute(raise_on_error=False))

    def _delivered(self, runs: list[PendingRun]) -> None:
        if runs:
            self._delivered_runs += len(runs)
            self._delivered_payloads += sum(len(run.payloads) for run in runs)
            self._last_delivery_at = self._clock.now()

    def _failed(self, error: Exception) -> float:
        self._failed_attempts += 1
        self._last_error = (
            f"could not publish to Redis ({len(self._outbox)} runs, {self._outbox.payload_count} "
            f"payloads waiting): {describe_error(error)}"
        )
        self._last_error_at = self._clock.now()
        ceiling = min(self._retry_max_seconds, RETRY_BASE_SECONDS * 2 ** min(self._failed_attempts - 1, 64))
        delay = self._uniform(0.0, ceiling)
        level = logging.WARNING if self._failed_attempts == 1 else logging.DEBUG
        logger.log(level, "%s; next attempt in %.2f s", self._last_error, delay)
        return delay

    def _recovered(self, delivered: int) -> None:
        if self._failed_attempts:
            logger.info(
                "Publishing to Redis works again after %d failed attempts: %d runs delivered late, "
                "%d still queued",
                self._failed_attempts,
                delivered,
                len(self._outbox),
            )
        self._failed_attempts = 0
