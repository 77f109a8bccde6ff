"""What the service reports about itself: each component's state, and the way to each sink.

Every actor posts its own state to the `HealthBoard` — an immutable value replacing the
previous one — so reading health never waits on an actor that is busy comparing a large
book or stuck on a stalled socket.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
from collections.abc import Mapping

import attrs

from reconciliation._domain.values import FrozenMapping
from reconciliation._runtime.delivery import DeliveryHealth

__all__ = [
    "OWNED_BY",
    "TRANSITIONS",
    "ComponentHealth",
    "ComponentState",
    "HealthBoard",
    "ServiceHealth",
    "owned_by",
    "owner_of",
]


class ComponentState(enum.Enum):
    RUNNING = "running"
    DEGRADED = "degraded"
    """It failed on something (see `last_error`) and went on; back to running after a clean run."""
    STOPPED = "stopped"

    def may_become(self, state: ComponentState) -> bool:
        """Whether a component in this state may go to `state` (`TRANSITIONS`)."""
        return state in TRANSITIONS[self]


TRANSITIONS: Mapping[ComponentState, frozenset[ComponentState]] = FrozenMapping(
    {
        ComponentState.RUNNING: frozenset({ComponentState.DEGRADED, ComponentState.STOPPED}),
        ComponentState.DEGRADED: frozenset(ComponentState),
        ComponentState.STOPPED: frozenset(),
    }
)
"""Where each state may go: a failure degrades a component (again, while degraded), a clean
run brings it back, and stopped is final — a late failure or recovery is refused, not shown."""


@attrs.frozen
class ComponentHealth:
    """One component (an actor, the timer) as it last reported itself.

    .. versionadded:: 0.1
    """

    name: str
    state: ComponentState
    errors: int = 0
    """Failures since the service started."""
    last_error: str | None = None
    last_error_at: dt.datetime | None = None


@attrs.frozen
class ServiceHealth:
    """The whole service: healthy when every component runs and every sink is reachable.

    .. versionadded:: 0.1
    """

    components: Mapping[str, ComponentHealth] = attrs.field(converter=FrozenMapping[str, ComponentHealth])
    delivery: Mapping[str, DeliveryHealth] = attrs.field(converter=FrozenMapping[str, DeliveryHealth])
    refused_fills: int = 0
    """Fills told for accounts the service does not reconcile (refused, counted)."""
    hung_broker_calls: int = 0
    """Broker or book calls still running past their timeout."""
    corrections_held: Mapping[str, str] = attrs.field(factory=dict, converter=FrozenMapping[str, str])
    """Accounts whose confirmed corrections are held, and why (a limit reached, another
    runtime's lease); proposals go on."""
    standby: Mapping[str, str] = attrs.field(factory=dict, converter=FrozenMapping[str, str])
    """Accounts this runtime does not reconcile, and why: `standby (owned by NAME)` while another
    runtime holds the account's lease, or `standby (...)` naming why this runtime may own none
    (another live process took its name). Normal for the second of two processes; not a
    problem by itself. An account whose lease Redis cannot confirm is not standby: it is
    reconciled without a lease and not corrected (`leases` degraded says so)."""
    warnings: tuple[str, ...] = ()
    """What a broker says to distrust about itself, one line per account (a ccxt venue whose answers
    were never verified against recorded payloads); it does not make the service unhealthy."""

    @property
    def healthy(self) -> bool:
        return all(c.state is ComponentState.RUNNING for c in self.components.values()) and all(
            d.reachable for d in self.delivery.values()
        )

    @property
    def problems(self) -> tuple[str, ...]:
        """One line per component or sink that is not well, for an operator."""
        lines = [
            f"{c.name} is {c.state.value}" + (f" ({c.errors} errors; last: {c.last_error})" if c.errors else "")
            for c in self.components.values()
            if c.state is not ComponentState.RUNNING
        ]
        lines.extend(
            f"{d.sink} unreachable ({d.queued_runs} runs queued"
            + (f", {d.incoming_runs} more not yet taken" if d.incoming_runs else "")
            + f"): {d.last_error}"
            for d in self.delivery.values()
            if not d.reachable
        )
        lines.extend(f"corrections of {account} held: {why}" for account, why in self.corrections_held.items())
        return tuple(lines)


OWNED_BY = "standby (owned by "


def owned_by(holder: str) -> str:
    """What health says of an account another runtime holds."""
    return f"{OWNED_BY}{holder})"


def owner_of(standby: str) -> str:
    """The runtime that holds an account held as standby here; empty when not known
    (another live process took this runtime's name)."""
    return standby.removeprefix(OWNED_BY).removesuffix(")") if standby.startswith(OWNED_BY) else ""


class HealthBoard:
    """The latest state each component posted. Each component writes only its own entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._components: dict[str, ComponentHealth] = {}
        self._delivery: dict[str, DeliveryHealth] = {}
        self._counters: dict[str, int] = {}
        self._notes: dict[str, Mapping[str, str]] = {}

    def post(self, health: ComponentHealth | DeliveryHealth) -> None:
        with self._lock:
            if isinstance(health, DeliveryHealth):
                self._delivery[health.sink] = health
            else:
                self._components[health.name] = health

    def count(self, counter: str, value: int) -> None:
        with self._lock:
            self._counters[counter] = value

    def note(self, name: str, value: Mapping[str, str]) -> None:
        with self._lock:
            self._notes[name] = dict(value)

    def read(self, now: dt.datetime | None = None) -> ServiceHealth:
        """What was posted; with `now`, a sink busy on one call past its limit is unreachable
        (its actor, stuck in that call, cannot say so itself)."""
        with self._lock:
            return ServiceHealth(
                components=dict(self._components),
                delivery={sink: d if now is None else d.judged_at(now) for sink, d in self._delivery.items()},
                refused_fills=self._counters.get("refused_fills", 0),
                hung_broker_calls=self._counters.get("hung_broker_calls", 0),
                corrections_held=self._notes.get("corrections_held", {}),
                standby=self._notes.get("standby", {}),
            )
