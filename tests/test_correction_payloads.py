"""The reconciliation:correction payload: its keys and encodings, the schema, and the wire (Redis)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
import redis

from reconciliation import (
    BrokerPosition,
    CorrectionEvent,
    CorrectionPolicy,
    CorrectionStatus,
    InMemoryPortfolio,
    ReconciliationConfig,
    ReconciliationService,
)
from reconciliation._domain.correction import Correction
from reconciliation._domain.models import AssetType, DiscrepancySeverity, DiscrepancyType
from reconciliation._publishing.inbound import SCHEMA
from reconciliation._publishing.redis_sink import CORRECTION_STREAM, RedisSink
from reconciliation._wire.payloads import CORRECTION_CHANNEL, correction_payload, encode
from reconciliation.testing import ManualClock, ScriptedBroker, settle

VALIDATOR = jsonschema.Draft202012Validator(
    {**SCHEMA, "$ref": "#/$defs/correction"}, format_checker=jsonschema.FormatChecker()
)
AT = dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.UTC)
BREAK = uuid.UUID("6f1c2a7e-3d4b-4c5a-9e8f-0123456789ab")
RUN = uuid.UUID("0f1c2a7e-3d4b-4c5a-9e8f-0123456789ab")
ACCOUNT = "ACC-1"


def fill(**changes: Any) -> Correction:
    fields: dict[str, Any] = {
        "break_id": BREAK,
        "run_id": RUN,
        "account_id": ACCOUNT,
        "type": DiscrepancyType.QUANTITY_MISMATCH,
        "symbol": "MSFT",
        "asset_type": AssetType.STOCK,
        "currency": None,
        "local_value": Decimal(50),
        "broker_value": Decimal(60),
        "observed_at": AT,
        "consecutive_runs": 2,
        "quantity": Decimal(10),
        "price": Decimal("4.153E+2"),
        "avg_cost": Decimal("415.30"),
        "notional": Decimal("4153.0"),
    }
    return Correction(**(fields | changes))


def cash() -> Correction:
    return fill(
        type=DiscrepancyType.CASH_MISMATCH,
        symbol=None,
        asset_type=None,
        local_value=Decimal("90446.95"),
        broker_value=Decimal("90442.00"),
        quantity=None,
        price=None,
        avg_cost=None,
        cash=Decimal("-4.95"),
        notional=Decimal("4.95"),
    )


def event(
    status: CorrectionStatus = CorrectionStatus.APPLIED, correction: Correction | None = None, **changes: Any
) -> CorrectionEvent:
    fields: dict[str, Any] = {
        "status": status,
        "correction": correction or fill(),
        "mode": "apply",
        "timestamp": AT,
        "actor": "reconciliation@host:42",
        "confirm_after_runs": 2,
        "severity": DiscrepancySeverity.CRITICAL,
    }
    return CorrectionEvent(**(fields | changes))


def test_an_applied_fill_gives_every_key_with_exact_plain_decimals() -> None:
    made = event()

    assert correction_payload(made) == {
        "event_id": str(made.event_id),
        "correction_id": str(made.correction.correction_id),
        "status": "applied",
        "mode": "apply",
        "account_id": ACCOUNT,
        "break_id": str(BREAK),
        "run_id": str(RUN),
        "type": "quantity_mismatch",
        "symbol": "MSFT",
        "asset_type": "stock",
        "currency": None,
        "local_value": "50",
        "broker_value": "60",
        "quantity": "10",
        "price": "415.3",
        "avg_cost": "415.30",
        "cash": None,
        "notional": "4153.0",
        "consecutive_runs": 2,
        "confirm_after_runs": 2,
        "severity": "critical",
        "reason": None,
        "verification_run_id": None,
        "observed_at": "2026-11-25T10:00:00.123456+00:00",
        "timestamp": "2026-11-25T10:00:00.123456+00:00",
        "actor": "reconciliation@host:42",
        "fills": [],
    }


@pytest.mark.parametrize(
    "made",
    [
        event(CorrectionStatus.PROPOSED, severity=DiscrepancySeverity.WARNING),
        event(CorrectionStatus.REFUSED, cash(), reason="its value exceeds max_notional"),
        event(CorrectionStatus.FAILED, reason="RuntimeError: book locked"),
        event(CorrectionStatus.VERIFIED, verification_run_id=uuid.uuid4()),
        event(CorrectionStatus.UNRESOLVED, reason="still there", verification_run_id=uuid.uuid4()),
        event(
            CorrectionStatus.CONFIRMED,
            fill(
                type=DiscrepancyType.COST_MISMATCH, quantity=None, price=None, local_value=1, broker_value=2
            ),
            mode="propose",
        ),
    ],
    ids=lambda made: made.status.value,
)
def test_every_step_satisfies_the_schema(made: CorrectionEvent) -> None:
    VALIDATOR.validate(json.loads(encode(correction_payload(made))))


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"type": "equity_mismatch"},
        {"quantity": "1E+1"},
        {"symbol": None},
        {"cash": "5"},
        {"verification_run_id": str(uuid.uuid4())},
        {"timestamp": "2026-11-25T10:00:00"},
    ],
)
def test_the_schema_rejects_a_payload_that_breaks_the_documented_form(change: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(correction_payload(event()) | change)


def test_the_schema_wants_a_reason_and_critical_for_an_unresolved_correction() -> None:
    payload = correction_payload(
        event(CorrectionStatus.UNRESOLVED, reason="x", verification_run_id=uuid.uuid4())
    )

    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(payload | {"severity": "warning"})
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(payload | {"reason": None})


def test_a_correction_event_goes_out_as_one_payload_marked_by_its_event_id() -> None:
    made = event()

    pending = RedisSink(redis.Redis, stream_maxlen=10).prepare(made)

    assert pending.run_id == str(made.event_id)
    assert pending.payloads == ((CORRECTION_CHANNEL, encode(correction_payload(made))),)


@pytest.mark.real_redis
def test_proposals_and_applications_reach_a_real_redis(real_redis: redis.Redis) -> None:
    broker = ScriptedBroker(ACCOUNT, [BrokerPosition("NVDA", 40, "120.00", "4800")], cash=Decimal(1000))
    book = InMemoryPortfolio(ACCOUNT, Decimal(1000))
    config = ReconciliationConfig(ACCOUNT, correction=CorrectionPolicy(mode="apply", confirm_after_runs=1))
    service = ReconciliationService(book, broker, real_redis, config, clock=ManualClock())
    pubsub = real_redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(CORRECTION_CHANNEL)
    asyncio.run(service.start())
    settle(service)
    asyncio.run(service.stop())

    streamed = [json.loads(fields["payload"]) for _, fields in real_redis.xrange(CORRECTION_STREAM)]
    heard = []
    deadline = time.monotonic() + 5.0
    while len(heard) < len(streamed) and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            heard.append(json.loads(message["data"]))
    pubsub.close()
    assert [p["status"] for p in streamed] == ["proposed", "confirmed", "applied", "verified"]
    assert heard == streamed
