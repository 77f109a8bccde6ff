"""Why a run happens. Each trigger knows its context payload and how specific it is."""

from __future__ import annotations

from typing import ClassVar

import attrs

from reconciliation._domain.values import non_empty_text

__all__ = ["OnDemand", "Periodic", "PostFill", "Startup", "Trigger", "most_specific"]


@attrs.frozen
class Startup:
    specificity: ClassVar[int] = 1

    def context(self) -> dict[str, str]:
        return {"trigger": "startup"}


@attrs.frozen
class Periodic:
    specificity: ClassVar[int] = 0

    def context(self) -> dict[str, str]:
        return {"trigger": "periodic"}


@attrs.frozen
class OnDemand:
    requested_by: str = attrs.field(default="api", validator=non_empty_text)
    specificity: ClassVar[int] = 3

    def context(self) -> dict[str, str]:
        return {"trigger": "on_demand", "requested_by": self.requested_by}


@attrs.frozen
class PostFill:
    """The last fill of a debounced burst."""

    order_id: str
    fill_id: str
    symbol: str
    specificity: ClassVar[int] = 2

    def context(self) -> dict[str, str]:
        return {
            "trigger": "post_fill",
            "order_id": self.order_id,
            "fill_id": self.fill_id,
            "symbol": self.symbol,
        }


Trigger = Startup | Periodic | OnDemand | PostFill


def most_specific(held: Trigger | None, arriving: Trigger) -> Trigger:
    """The context a coalesced run carries: on_demand > post_fill > startup > periodic.

    Between equals the later one wins, so a burst of fills reports its last fill.
    """
    if held is None or arriving.specificity >= held.specificity:
        return arriving
    return held
