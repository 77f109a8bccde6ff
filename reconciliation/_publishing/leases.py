"""One owner per account across processes: a lease per account on Redis.

Two runtimes configured with the same account would both reconcile, publish and correct
it. Each runtime therefore *claims* a lease per account: a key holding the runtime's
name and a fencing token, set only if absent (`SET NX PX`), renewed by its holder and
left to expire when the holder dies. A runtime that finds another holder is told who
holds it, and for how much longer (the moment to try again); a runtime that cannot
reach Redis cannot know, so the caller treats the account as not held. The token grows
with every new holder, so what was done under an older one can be told from a newer
holder's (it travels with every stream entry, see `redis_sink`).

The claim is one Lua script (on a Cluster every key carries the one hash tag, so a
pipeline of claims goes to one master); on a server without scripting (fakeredis without
Lua) a WATCH/MULTI transaction does the same.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import attrs
import redis

from reconciliation._domain.error_text import describe_error
from reconciliation._publishing.connection import close_client
from reconciliation._publishing.redis_sink import KeySpace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["AccountLeases", "HeldElsewhere", "Lease", "RedisConnection", "decoded", "set_if"]

logger = logging.getLogger(__name__)


@attrs.frozen
class Lease:
    """This runtime holds `account_id`'s lease, under fencing `token`, for `ttl_ms` more."""

    account_id: str
    token: int
    ttl_ms: int


@attrs.frozen
class HeldElsewhere:
    """Runtime `holder` holds `account_id`'s lease, for `ttl_ms` more unless it renews it."""

    account_id: str
    holder: str
    ttl_ms: int


Claimed = Lease | HeldElsewhere


class RedisConnection:
    """Our connection to Redis, made at first use and again after `close`, until `shut`."""

    shut_message = "the lease connections are shut: the runtime is stopping"

    def __init__(self, connect: Callable[[], redis.Redis | redis.RedisCluster]) -> None:
        self._connect = connect
        self._client: redis.Redis | redis.RedisCluster | None = None
        self._shut = False

    def shut(self) -> None:
        """Close our connections for good (from another thread, at stop): nothing is sent afterwards."""
        self._shut = True
        self.close()

    def close(self) -> None:
        """Close our connections (from any thread: a call stalled on one ends with an error)."""
        client, self._client = self._client, None
        close_client(client)

    def _node(self) -> tuple[redis.Redis, KeySpace]:
        """Who to ask (the client, or on a cluster the master holding our keys' one slot), and our keys."""
        if self._shut:
            raise redis.ConnectionError(self.shut_message)
        client = self._client = self._client or self._connect()
        keys = KeySpace.for_client(client)
        if isinstance(client, redis.RedisCluster):
            node = client.get_node_from_key(keys.marker(""))  # type: ignore[no-untyped-call,unused-ignore]
            return client.get_redis_connection(node), keys
        return client, keys


class AccountLeases(RedisConnection):
    """Claims and releases accounts' leases for one runtime (`owner`, unique per live
    process). Not thread-safe: one actor owns each instance."""

    def __init__(
        self, connect: Callable[[], redis.Redis | redis.RedisCluster], *, owner: str, ttl_seconds: float
    ) -> None:
        super().__init__(connect)
        self._owner = owner
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)
        self._scripting: bool | None = None

    @property
    def owner(self) -> str:
        return self._owner

    def claim(self, account_id: str) -> Lease | str:
        """Take or renew the account's lease: the `Lease`, or why this runtime does not hold it."""
        try:
            claimed = self.claim_all((account_id,))[account_id]
        except redis.RedisError as error:
            return (
                f"this runtime cannot confirm it holds {account_id}'s lease: Redis: {describe_error(error)}"
            )
        if isinstance(claimed, Lease):
            return claimed
        return f"{claimed.holder} holds {account_id}'s lease: one runtime reconciles an account"

    def claim_all(self, account_ids: Iterable[str]) -> dict[str, Claimed]:
        """Take or renew each account's lease, in one round trip when the server runs Lua.

        Raises:
            redis.RedisError: Redis did not answer (the connection is closed, and made again
                at the next call): whether the leases are held is not known.
        """
        try:
            node, keys = self._node()
            wanted = [(a, f"{keys.prefix}lease:{a}", f"{keys.prefix}lease-token:{a}") for a in account_ids]
            if self._scripting is not False:
                claimed = self._claim_by_script(node, wanted)
                if claimed is not None:
                    return claimed
            return {a: self._claim_in_transaction(node, a, key, tokens) for a, key, tokens in wanted}
        except redis.RedisError:
            self.close()
            raise

    def release_all(self, account_ids: Iterable[str]) -> None:
        """Give up the leases this runtime holds (at a clean stop), so that a standby takes
        them at once instead of when they expire. A lease held by another is left alone."""
        try:
            node, keys = self._node()
            for account_id in account_ids:
                with contextlib.suppress(redis.WatchError):  # it changed hands meanwhile: not ours to delete
                    set_if(node, f"{keys.prefix}lease:{account_id}", self._ours, None)
        except redis.RedisError as error:
            logger.warning(
                "The account leases could not be released (%s): they expire on their own",
                describe_error(error),
            )
            self.close()

    def _ours(self, held: str | None) -> bool:
        return (held or "").rpartition("|")[0] == self._owner

    def _claim_by_script(
        self, node: redis.Redis, wanted: list[tuple[str, str, str]]
    ) -> dict[str, Claimed] | None:
        """The claims as one pipeline of script calls; None when this server runs no Lua."""
        pipe = node.pipeline(transaction=False)
        for _, key, tokens in wanted:
            pipe.eval(_CLAIM, 2, key, tokens, self._owner, self._ttl_ms)  # type: ignore[no-untyped-call,unused-ignore]
        replies = pipe.execute(raise_on_error=False)
        claimed: dict[str, Claimed] = {}
        for (account_id, _, _), reply in zip(wanted, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                if self._scripting or "unknown command" not in str(reply).lower():
                    raise reply
                self._scripting = False
                return None
            held, value, ttl_ms = reply
            claimed[account_id] = (
                Lease(account_id, int(value), int(ttl_ms))
                if held
                else HeldElsewhere(account_id, decoded(value) or "", int(ttl_ms))
            )
        self._scripting = True
        return claimed

    def _claim_in_transaction(self, client: redis.Redis, account_id: str, key: str, tokens: str) -> Claimed:
        """`_CLAIM`, as WATCH/MULTI: retried while another client changes the keys meanwhile."""
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, tokens)  # type: ignore[no-untyped-call,unused-ignore]
                    owner, _, token = (decoded(pipe.get(key)) or "").rpartition("|")
                    if token and owner != self._owner:
                        return HeldElsewhere(account_id, owner, int(pipe.pttl(key)))
                    last = int(pipe.get(tokens) or 0)  # read while watched, before MULTI buffers
                    pipe.multi()
                    if token:
                        pipe.pexpire(key, self._ttl_ms)
                    else:
                        token = str(last + 1)
                        pipe.set(tokens, token)
                        pipe.set(key, f"{self._owner}|{token}", px=self._ttl_ms)
                    pipe.execute()
                except redis.WatchError:
                    continue
                return Lease(account_id, int(token), self._ttl_ms)


_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value then
  local owner, token = string.match(value, '^(.*)|([^|]*)$')
  if owner ~= ARGV[1] then
    return {0, owner, redis.call('PTTL', KEYS[1])}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, token, tonumber(ARGV[2])}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return {1, tostring(token), tonumber(ARGV[2])}
"""
"""Renew our lease, or take a lease nobody holds under the next token; else name its
holder and how long its lease has left."""


def set_if(
    node: redis.Redis, key: str, allowed: Callable[[str | None], bool], value: str | None, ttl_ms: int = 0
) -> str | None:
    """Set `key` to `value` for `ttl_ms` (None: delete it) if what it holds is `allowed`; what it held.

    Raises:
        redis.WatchError: the key changed meanwhile, and was not set.
    """
    with node.pipeline(transaction=True) as pipe:
        pipe.watch(key)  # type: ignore[no-untyped-call,unused-ignore]
        held = decoded(pipe.get(key))
        if allowed(held):
            pipe.multi()
            if value is None:
                pipe.delete(key)
            else:
                pipe.set(key, value, px=ttl_ms)
            pipe.execute()
        return held


def decoded(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
