"""One writer per account across processes: a lease per account on Redis.

Two runtimes configured with the same account would both correct its book. Before a
runtime applies a correction it *claims* the account's lease: a key holding the
runtime's name and a fencing token, set only if absent (`SET NX PX`), renewed by its
holder at every claim and left to expire when the holder dies. A runtime that finds
another holder proposes only, and says who holds the account; a runtime that cannot
reach Redis cannot know, so it does not apply either. The token grows with every new
holder, so a step taken under an older one can be told from a newer holder's.

The claim is one Lua script (on a Cluster the two keys share the hash tag); on a server
without scripting (fakeredis without Lua) a WATCH/MULTI transaction does the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs
import redis

from reconciliation._domain.error_text import describe_error
from reconciliation._publishing.redis_sink import KeySpace

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AccountLeases", "Lease"]

logger = logging.getLogger(__name__)


@attrs.frozen
class Lease:
    """This runtime holds `account_id`'s lease, under fencing `token`, for `ttl_ms` more."""

    account_id: str
    token: int
    ttl_ms: int


class AccountLeases:
    """Claims accounts' leases for one runtime (`owner`, unique per process). Not thread-safe:
    one actor owns it."""

    def __init__(
        self, connect: Callable[[], redis.Redis | redis.RedisCluster], *, owner: str, ttl_seconds: float
    ) -> None:
        self._connect = connect
        self._client: redis.Redis | redis.RedisCluster | None = None
        self._owner = owner
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)
        self._scripting: bool | None = None

    def claim(self, account_id: str) -> Lease | str:
        """Take or renew the account's lease: the `Lease`, or why this runtime does not hold it."""
        try:
            client = self._client = self._client or self._connect()
            keys = KeySpace.for_client(client)
            lease_keys = (f"{keys.prefix}lease:{account_id}", f"{keys.prefix}lease-token:{account_id}")
            held, value = self._claim(client, *lease_keys)
        except redis.RedisError as error:
            self.close()
            return f"this runtime cannot confirm it holds {account_id}'s lease: Redis: {describe_error(error)}"
        if held:
            return Lease(account_id, int(value), self._ttl_ms)
        return f"{value} holds {account_id}'s lease: one runtime corrects an account"

    def _claim(self, client: redis.Redis | redis.RedisCluster, key: str, tokens: str) -> tuple[bool, str]:
        if self._scripting is not False:
            try:
                held, value = client.eval(_CLAIM, 2, key, tokens, self._owner, self._ttl_ms)  # type: ignore[no-untyped-call,unused-ignore]
            except redis.ResponseError as error:
                if self._scripting or "unknown command" not in str(error).lower():
                    raise
                self._scripting = False
            else:
                self._scripting = True
                return bool(held), _text(value)
        return self._claim_in_transaction(client, key, tokens)

    def _claim_in_transaction(self, client: redis.Redis | redis.RedisCluster, key: str, tokens: str) -> tuple[bool, str]:
        """`_CLAIM`, as WATCH/MULTI: retried while another client changes the keys meanwhile."""
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, tokens)  # type: ignore[no-untyped-call,unused-ignore]
                    owner, _, token = _text(pipe.get(key) or b"").rpartition("|")
                    if token and owner != self._owner:
                        return False, owner
                    pipe.multi()
                    if token:
                        pipe.pexpire(key, self._ttl_ms)
                    else:
                        token = str(int(pipe.get(tokens) or 0) + 1)
                        pipe.set(tokens, token)
                        pipe.set(key, f"{self._owner}|{token}", px=self._ttl_ms)
                    pipe.execute()
                except redis.WatchError:
                    continue
                return True, token

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value then
  local owner, token = string.match(value, '^(.*)|([^|]*)$')
  if owner ~= ARGV[1] then
    return {0, owner}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, token}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return {1, tostring(token)}
"""
"""Renew our lease, or take a lease nobody holds under the next token; else name its holder."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
