"""Why a run happens. Each trigger knows its context payload and how specific it is."""

from __future__ import annotations

from typing import ClassVar

import attrs

from reconciliation._domain.values import carriable_text

__all__ = ["TRIGGER_NAMES", "OnDemand", "Periodic", "PostFill", "Startup", "Trigger", "most_specific"]


@attrs.frozen
class _Trigger:
    name: ClassVar[str]
    specificity: ClassVar[int]

    def context(self) -> dict[str, str]:
        """The run's context: the trigger's name, then its fields."""
        return {"trigger": self.name, **attrs.asdict(self)}


@attrs.frozen
class Startup(_Trigger):
    name: ClassVar[str] = "startup"
    specificity: ClassVar[int] = 1


@attrs.frozen
class Periodic(_Trigger):
    name: ClassVar[str] = "periodic"
    specificity: ClassVar[int] = 0


@attrs.frozen
class OnDemand(_Trigger):
    requested_by: str = attrs.field(default="api", validator=carriable_text)
    name: ClassVar[str] = "on_demand"
    specificity: ClassVar[int] = 3


@attrs.frozen
class PostFill(_Trigger):
    """The last fill of a debounced burst."""

    order_id: str
    fill_id: str
    symbol: str
    name: ClassVar[str] = "post_fill"
    specificity: ClassVar[int] = 2


Trigger = Startup | Periodic | OnDemand | PostFill

TRIGGER_NAMES: tuple[str, ...] = tuple(kind.name for kind in (Startup, Periodic, PostFill, OnDemand))
"""Every trigger's name, as a run's context gives it."""


def most_specific(held: Trigger | None, arriving: Trigger) -> Trigger:
    """The context a coalesced run carries: on_demand > post_fill > startup > periodic.

    Between equals the later one wins, so a burst of fills reports its last fill.
    """
    if held is None or arriving.specificity >= held.specificity:
        return arriving
    return held
