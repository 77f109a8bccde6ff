"""A broker that answers plain dicts, as most brokers' JSON does, against one answering objects.

The dicts carry what a broker's JSON carries: the symbol, and each amount as decimal text
(JSON numbers would be floats, which the service refuses for money). The service checks
and converts every entry; objects of its own `BrokerPosition` type are taken as they are.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from _harness import Row, Sample, interleave
from _service import CASH, start_service, stop_service
from books import ACCOUNT, make_books

from reconciliation import ReconcileRequest
from reconciliation._domain.models import AssetType, BrokerAccount

if TYPE_CHECKING:
    import redis

    from reconciliation._domain.models import BrokerPosition

__all__ = ["DictBroker", "as_dicts", "dicts_row"]


def as_dicts(positions: list[BrokerPosition]) -> list[dict[str, str]]:
    return [
        {
            "symbol": p.symbol.encode().decode(),
            "quantity": str(p.quantity),
            "avg_cost": str(p.avg_cost),
            "market_value": str(p.market_value),
        }
        for p in positions
    ]


class DictBroker:
    """A `BrokerQuery` answering its positions as a new list of dicts at every call."""

    def __init__(self, positions: list[dict[str, str]]) -> None:
        self.positions = positions

    def get_positions(self, account_id: str) -> list[dict[str, str]]:  # noqa: ARG002 - one account
        return list(self.positions)

    def get_account(self, account_id: str) -> BrokerAccount:
        return BrokerAccount(account_id, CASH, CASH, CASH, Decimal(0))


def dicts_row(n: int, repeats: int, client: redis.Redis) -> Row:
    local, broker = make_books(n)
    local = [p for p in local if p.asset_type is AssetType.STOCK]  # a dict answer's asset_type must be an
    broker = [p for p in broker if p.asset_type is AssetType.STOCK]  # AssetType, not text: stocks only
    services = {
        "objects": start_service(local, broker, client, account_id=f"{ACCOUNT}-objects"),
        "dicts": start_service(
            local, [], client, broker_query=DictBroker(as_dicts(broker)), account_id=f"{ACCOUNT}-dicts"
        ),
    }
    results = []
    try:
        times = interleave(
            {
                name: lambda service=service: results.append(
                    service.ref.ask(ReconcileRequest(service.config.account_id, requested_by="bench"), timeout=60)
                )
                for name, service in services.items()
            },
            repeats,
            warmup=3,
        )
    finally:
        for service in services.values():
            stop_service(service)
    if not all(r.error is None and r.is_clean for r in results):
        msg = f"a run was not clean: {next(r for r in results if r.error is not None or not r.is_clean)}"
        raise RuntimeError(msg)
    dicts, objects = Sample(times["dicts"], "ms"), Sample(times["objects"], "ms")
    ratio = dicts.median / objects.median
    return Row(
        figure=f"on-demand reconcile of {n:,} positions, ask → result, the broker answering dicts of decimal text",
        measured=dicts.text(),
        baseline=f"the broker answering BrokerPosition objects {objects.text()}",
        ratio=f"{ratio:.2f}x",
        target="≤ 2x",
        met=ratio <= 2.0,
    )
