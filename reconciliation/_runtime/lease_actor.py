"""The lease actor: keeps this runtime's leases on its accounts, and tells the scheduler
which accounts it owns (`LeaseHeld`, `LeaseNotHeld`).

docs/architecture.md ("One owner per account: the leases") draws its states and says what
each guarantees: an owned account's runs carry its `Fence`; while Redis does not answer,
an owned account is unconfirmed from the last renewal before its lease could have expired
(reconciled, never corrected); a standby account is not run here, and is retried at the
moment the holder's lease would expire. At a clean stop the leases and the name are released.

The Redis calls are made here, not in the scheduler, so that a stalled Redis never
holds up the starting of runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import redis

from reconciliation._domain.error_text import describe_error
from reconciliation._domain.fencing import Fence
from reconciliation._publishing.leases import Lease
from reconciliation._publishing.runtime_names import NameInUseError
from reconciliation._runtime.actor_base import ResilientActor, tell
from reconciliation._runtime.health import ComponentState, owned_by
from reconciliation._runtime.messages import LeaseHeld, LeaseNotHeld, TimerDue

if TYPE_CHECKING:
    from collections.abc import Collection

    import pykka

    from reconciliation._publishing.leases import AccountLeases, Claimed
    from reconciliation._publishing.runtime_names import RuntimeName
    from reconciliation._runtime.clock import Clock, TimerHandle
    from reconciliation._runtime.health import HealthBoard

__all__ = [
    "KEY_SHARE_OF_LEASE",
    "RENEWALS_PER_LEASE",
    "FirstClaim",
    "LeaseActor",
    "Ownership",
    "Unconfirmed",
    "first_claim",
]

logger = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3
"""A lease is renewed this many times per lease period."""
KEY_SHARE_OF_LEASE = 0.8
"""A lease key expires this share of the lease period after its last renewal (2.4 renewal
intervals: one renewal may fail unnoticed), so that a standby, retrying when it expires,
has taken the account over and started its first run within the lease period."""
RETRY_MARGIN_SECONDS = 0.05
"""A standby tries again this long after the holder's lease was due to expire."""

@attrs.frozen
class Unconfirmed:
    """An account reconciled without a lease: Redis cannot confirm one, and `why`."""

    why: str


Ownership = Fence | Unconfirmed | str
"""An account's lease as this runtime knows it: the fence it owns it under, unconfirmed, or
why it is standby."""


@attrs.frozen
class FirstClaim:
    """What start found: whether the name is held, each account's ownership, and when to
    try again first (a lease held elsewhere may expire sooner than a renewal interval)."""

    name_held: bool
    ownership: Mapping[str, Ownership]
    retry_seconds: float | None = None


def first_claim(name: RuntimeName, leases: AccountLeases, accounts: Collection[str]) -> FirstClaim:
    """At start: claim the runtime's name, then each account's lease; without Redis, every
    account is reconciled unconfirmed (no fence, no correction) until Redis answers.

    Raises:
        NameInUseError: another live process runs under this runtime's name.
    """
    try:
        name.claim()
        claimed = leases.claim_all(accounts)
    except redis.RedisError as error:
        why = f"Redis does not answer: {describe_error(error)}"
        logger.warning(
            "The accounts' leases cannot be claimed (%s): every account is reconciled without one, "
            "and none is corrected, until Redis answers",
            why,
        )
        return FirstClaim(name_held=False, ownership=dict.fromkeys(accounts, Unconfirmed(why)))
    ownership = {a: _ownership(leases.owner, c) for a, c in claimed.items()}
    return FirstClaim(name_held=True, ownership=ownership, retry_seconds=_first_expiry(claimed.values()))


class LeaseActor(ResilientActor):
    component = "leases"
    recovers_after_clean_run = False

    def __init__(
        self,
        *,
        leases: AccountLeases,
        name: RuntimeName,
        first: FirstClaim,
        scheduler: pykka.ActorRef[Any],
        board: HealthBoard,
        clock: Clock,
        lease_seconds: float,
    ) -> None:
        super().__init__(board=board, clock=clock)
        self._leases = leases
        self._name = name
        self._name_held = first.name_held
        self._ownership = dict(first.ownership)
        self._first_retry = first.retry_seconds
        self._scheduler = scheduler
        self._key_seconds = lease_seconds * KEY_SHARE_OF_LEASE
        self._renew_seconds = lease_seconds / RENEWALS_PER_LEASE
        self._confirmed_at: float | None = clock.monotonic() if first.name_held else None
        self._timer: TimerHandle | None = None
        self._cut_off = False

    def started(self) -> None:
        if not self._name_held:
            self.degrade("the leases are not claimed yet: Redis did not answer at start")
        self._post_standby()
        self._arm(min(self._renew_seconds, self._first_retry or self._renew_seconds))

    def handle(self, message: Any) -> Any:
        if isinstance(message, TimerDue):
            self._tick()
        else:
            logger.warning("The lease actor ignored an unexpected %s", type(message).__name__)

    def cut_off(self) -> None:
        """Close the connections from another thread (stop gave up waiting on a stalled
        Redis): the call stalled on one ends, and the leases are left to expire."""
        self._cut_off = True
        self._leases.shut()
        self._name.shut()

    def stopping(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._cut_off:
            return
        owned = [a for a, o in self._ownership.items() if isinstance(o, Fence)]
        if owned:
            self._leases.release_all(owned)
        if self._name_held:
            self._name.release()
        self._leases.close()

    def _tick(self) -> None:
        sent = self._clock.monotonic()
        try:
            if not self._hold_name():
                self._arm(self._renew_seconds)
                return
            claimed = self._leases.claim_all(self._ownership)
        except redis.RedisError as error:
            self._unanswered(sent, describe_error(error))
            self._arm(self._renew_seconds)
            return
        if self._state is ComponentState.DEGRADED:
            self._recovered()
        self._confirmed_at = sent
        for account_id, claim in claimed.items():
            self._set(account_id, _ownership(self._leases.owner, claim))
        self._post_standby()
        self._arm(min(self._renew_seconds, _first_expiry(claimed.values()) or self._renew_seconds))

    def _hold_name(self) -> bool:
        """Claim or renew the runtime's name; False (every account standby) when another
        live process holds it."""
        try:
            if self._name_held:
                other = self._name.renew()
                if other is None:
                    return True
                problem = f"another process ({other}) took the runtime name {self._name.name!r}"
            else:
                self._name.claim()
                self._name_held = True
                return True
        except NameInUseError as error:
            problem = str(error)
        self._name_held = False
        logger.error("%s: this runtime owns no account", problem)
        self.degrade(problem)
        for account_id in self._ownership:
            self._set(account_id, f"standby ({problem})")
        self._post_standby()
        return False

    def _unanswered(self, sent: float, error: str) -> None:
        """Redis did not answer: an owned account is reconciled unconfirmed from when its
        lease could expire before the next renewal's answer."""
        self.degrade(f"the leases cannot be renewed: Redis does not answer: {error}")
        expires = (self._confirmed_at if self._confirmed_at is not None else sent) + self._key_seconds
        if sent + self._renew_seconds < expires:
            return
        for account_id, ownership in self._ownership.items():
            if isinstance(ownership, Fence):
                self._set(account_id, Unconfirmed(f"Redis does not answer: {error}"))
        self._post_standby()

    def _set(self, account_id: str, ownership: Ownership) -> None:
        if ownership == self._ownership[account_id]:
            return
        self._ownership[account_id] = ownership
        if isinstance(ownership, str):
            tell(self._scheduler, LeaseNotHeld(account_id, ownership))
        else:
            tell(self._scheduler, LeaseHeld(account_id, ownership if isinstance(ownership, Fence) else None))

    def _arm(self, delay: float) -> None:
        me = self.actor_ref
        self._timer = self._clock.call_later(delay, lambda: tell(me, TimerDue()))

    def _post_standby(self) -> None:
        self._board.note("standby", {a: o for a, o in self._ownership.items() if isinstance(o, str)})


def _ownership(owner: str, claimed: Claimed) -> Ownership:
    return Fence(owner, claimed.token) if isinstance(claimed, Lease) else owned_by(claimed.holder)


def _first_expiry(claimed: Collection[Claimed]) -> float | None:
    """When the first lease held elsewhere expires (a little after), in seconds; None: none
    will (a key set without an expiry is retried at the renewal interval)."""
    expiries = [c.ttl_ms / 1000 for c in claimed if not isinstance(c, Lease) and c.ttl_ms > 0]
    return min(expiries) + RETRY_MARGIN_SECONDS if expiries else None
