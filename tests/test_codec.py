"""The payloads on the wire: exactly spec/contract.md's keys, values and formats."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation._domain.ageing import AgeingUpdate, BreakTracker, Sighting
from reconciliation._domain.correction import CorrectionStatus
from reconciliation._domain.fills import Fill, explain
from reconciliation._domain.models import (
    AssetType,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    NettedSymbol,
    ReconciliationResult,
)
from reconciliation._domain.values import MAX_DECIMAL_PLACES, MAX_INTEGER_DIGITS, uncarriable_at
from reconciliation._publishing.inbound import SCHEMA, decode
from reconciliation._publishing.streams import STREAMS, StreamEntry
from reconciliation._wire.payloads import (
    DISCREPANCY_CHANNEL,
    RESULT_CHANNEL,
    discrepancy_payload,
    encode,
    iter_payloads,
    result_payload,
)

RUN_ID = uuid.UUID("6f1c2a7e-3d4b-4c5a-9e8f-0123456789ab")
AT = dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.UTC)
PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {**SCHEMA, "$ref": f"#/$defs/{kind}"}, format_checker=jsonschema.FormatChecker()
    )


def quantity_mismatch(
    local: Decimal | None = Decimal(100), broker: Decimal | None = Decimal(150)
) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.QUANTITY_MISMATCH,
        severity=DiscrepancySeverity.CRITICAL,
        symbol="AAPL",
        local_value=local,
        broker_value=broker,
        timestamp=AT,
        account_id="ACC-1",
    )


def result(**changes: Any) -> ReconciliationResult:
    fields: dict[str, Any] = {
        "run_id": RUN_ID,
        "account_id": "ACC-1",
        "timestamp": AT,
        "positions_checked": 12,
        "duration_ms": 3.2,
        "context": {"trigger": "periodic"},
    }
    return ReconciliationResult(**(fields | changes))


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_a_clean_run_gives_exactly_the_contract_result() -> None:
    assert result_payload(result()) == {
        "run_id": "6f1c2a7e-3d4b-4c5a-9e8f-0123456789ab",
        "account_id": "ACC-1",
        "timestamp": "2026-11-25T10:00:00.123456+00:00",
        "is_clean": True,
        "discrepancy_count": 0,
        "positions_checked": 12,
        "duration_ms": 3.2,
        "context": {"trigger": "periodic"},
        "status": "ok",
        "error": None,
        "suspect": False,
        "suspect_reason": None,
        "next_run_due": None,
        "netted": [],
    }


def test_a_suspect_run_says_so_and_why() -> None:
    payload = result_payload(result(suspect="it holds 0 positions where recent answers held 200"))

    assert (payload["suspect"], payload["suspect_reason"]) == (
        True,
        "it holds 0 positions where recent answers held 200",
    )
    validator("result").validate(payload)


def test_a_result_says_when_the_next_periodic_run_is_due() -> None:
    due = dt.datetime(2026, 11, 25, 10, 5, tzinfo=dt.UTC)

    payload = result_payload(result(next_run_due=due))

    assert payload["next_run_due"] == "2026-11-25T10:05:00.000000+00:00"
    validator("result").validate(payload)


def test_a_run_with_discrepancies_is_not_clean_and_counts_them() -> None:
    payload = result_payload(result(discrepancies=[quantity_mismatch(), quantity_mismatch()]))

    assert (payload["is_clean"], payload["discrepancy_count"], payload["status"]) == (False, 2, "ok")


def test_a_failed_run_has_status_failed_not_clean_and_the_error() -> None:
    payload = result_payload(result(error="broker timed out after 30.0 s: ReadTimeout('read')"))

    assert payload["status"] == "failed"
    assert payload["is_clean"] is False
    assert payload["error"] == "broker timed out after 30.0 s: ReadTimeout('read')"
    validator("result").validate(payload)


def test_the_trigger_context_is_carried_whole() -> None:
    context = {"trigger": "post_fill", "order_id": "O-1", "fill_id": "F-9", "symbol": "AAPL"}

    assert result_payload(result(context=context))["context"] == context


def test_netted_symbols_are_listed_with_side_and_entries() -> None:
    netted = [NettedSymbol(side="broker", symbol="AAPL", entries=2)]

    assert result_payload(result(netted=netted))["netted"] == [
        {"side": "broker", "symbol": "AAPL", "asset_type": "stock", "entries": 2}
    ]


def test_a_discrepancy_gives_exactly_the_contract_payload() -> None:
    assert discrepancy_payload(result(), quantity_mismatch()) == {
        "run_id": "6f1c2a7e-3d4b-4c5a-9e8f-0123456789ab",
        "type": "quantity_mismatch",
        "severity": "critical",
        "symbol": "AAPL",
        "asset_type": "stock",
        "currency": None,
        "local_value": "100",
        "broker_value": "150",
        "timestamp": "2026-11-25T10:00:00.123456+00:00",
        "account_id": "ACC-1",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("150.25"), "150.25"),
        (Decimal("1E+2"), "100"),
        (Decimal("1.5E+2"), "150"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("-12.50"), "-12.50"),
        (Decimal("0.00"), "0.00"),
        (Decimal("123456789012345678901234567890.123"), "123456789012345678901234567890.123"),
    ],
)
def test_decimal_values_are_exact_and_in_plain_notation(value: Decimal, text: str) -> None:
    payload = discrepancy_payload(result(), quantity_mismatch(local=value))

    assert payload["local_value"] == text


def test_the_side_that_has_nothing_is_null() -> None:
    missing_local = Discrepancy(
        type=DiscrepancyType.MISSING_LOCAL,
        severity=DiscrepancySeverity.CRITICAL,
        symbol="TSLA",
        local_value=None,
        broker_value=Decimal(7),
        timestamp=AT,
        account_id="ACC-1",
    )

    payload = discrepancy_payload(result(), missing_local)

    assert (payload["local_value"], payload["broker_value"]) == (None, "7")
    validator("discrepancy").validate(payload)


def test_an_account_level_discrepancy_has_a_null_symbol() -> None:
    cash = Discrepancy(
        type=DiscrepancyType.CASH_MISMATCH,
        severity=DiscrepancySeverity.WARNING,
        symbol=None,
        local_value=Decimal("10000.00"),
        broker_value=Decimal("9875.40"),
        timestamp=AT,
        account_id="ACC-1",
    )

    payload = discrepancy_payload(result(), cash)

    assert payload["symbol"] is None
    validator("discrepancy").validate(payload)


def test_timestamps_are_utc_with_offset_and_microseconds() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    on_the_second = dt.datetime(2026, 11, 25, 11, 0, 0, tzinfo=paris)

    payload = result_payload(result(timestamp=on_the_second))

    assert payload["timestamp"] == "2026-11-25T10:00:00.000000+00:00"


def test_encode_is_compact_json_with_sorted_keys() -> None:
    assert encode({"b": 1, "a": {"d": None, "c": "x"}}) == '{"a":{"c":"x","d":null},"b":1}'


def test_encode_does_not_depend_on_insertion_order() -> None:
    assert encode({"a": 1, "b": 2}) == encode({"b": 2, "a": 1})


def test_a_duration_that_is_not_a_number_never_reaches_the_codec() -> None:
    with pytest.raises(ValueError, match="duration_ms must be a finite number"):
        result(duration_ms=float("nan"))


def test_a_run_is_published_result_first_then_each_discrepancy_in_order() -> None:
    first = quantity_mismatch(local=Decimal(1))
    second = quantity_mismatch(local=Decimal(2))
    run = result(discrepancies=[first, second])

    assert iter_payloads(run) == [
        (RESULT_CHANNEL, encode(result_payload(run))),
        (DISCREPANCY_CHANNEL, encode(discrepancy_payload(run, first))),
        (DISCREPANCY_CHANNEL, encode(discrepancy_payload(run, second))),
    ]


def test_an_explained_break_carries_its_fills_in_canonical_text_the_schema_admits() -> None:
    missed = Fill("E-123", "O-1", "AAPL", 50, "412.30", AT, fee=Decimal("0.50"))
    explained = attrs.evolve(quantity_mismatch(), explanation=explain(Decimal(50), [], [missed]))
    run = result(discrepancies=[explained])
    ageing = BreakTracker().observe(run)

    for (_, text) in [iter_payloads(run)[1], iter_payloads(run, ageing)[1]]:
        payload = json.loads(text)
        assert text == encode(payload)
        validator("discrepancy").validate(payload)
        assert payload["explanation"]["verdict"] == "explained"
        assert payload["explanation"]["missing_locally"] == [
            {
                "fill_id": "E-123",
                "order_id": "O-1",
                "venue_fill_id": None,
                "symbol": "AAPL",
                "asset_type": "stock",
                "side": "buy",
                "quantity": "50",
                "price": "412.30",
                "fee": "0.50",
                "timestamp": "2026-11-25T10:00:00.123456+00:00",
            }
        ]


def test_the_channels_are_the_contract_names() -> None:
    assert (RESULT_CHANNEL, DISCREPANCY_CHANNEL) == ("reconciliation:result", "reconciliation:discrepancy")


def test_the_contract_examples_satisfy_the_schema() -> None:
    validator("result").validate(
        {
            "run_id": "0b7e8c1e-5f2a-4d8e-9a61-3c2f1e0d9b7a",
            "account_id": "ACC-1",
            "timestamp": "2026-11-25T10:00:00.123456+00:00",
            "is_clean": True,
            "discrepancy_count": 0,
            "positions_checked": 12,
            "duration_ms": 3.2,
            "context": {"trigger": "periodic"},
            "status": "ok",
            "error": None,
        }
    )
    validator("discrepancy").validate(
        {
            "run_id": "0b7e8c1e-5f2a-4d8e-9a61-3c2f1e0d9b7a",
            "type": "quantity_mismatch",
            "severity": "critical",
            "symbol": "AAPL",
            "local_value": "100",
            "broker_value": "150",
            "timestamp": "2026-11-25T10:00:00.123456+00:00",
            "account_id": "ACC-1",
        }
    )


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("result", {"error": None, "status": "failed"}),
        ("result", {"is_clean": True, "discrepancy_count": 1}),
        ("result", {"timestamp": "2026-11-25T10:00:00.123456Z"}),
        ("result", {"run_id": "not-a-uuid"}),
        ("discrepancy", {"local_value": "1.5E+2"}),
        ("discrepancy", {"symbol": None}),
        ("discrepancy", {"type": "cash_mismatch"}),
        ("discrepancy", {"severity": "fatal"}),
    ],
)
def test_the_schema_rejects_a_payload_that_breaks_the_contract(kind: str, change: dict[str, Any]) -> None:
    run = result()
    payload = result_payload(run) if kind == "result" else discrepancy_payload(run, quantity_mismatch())

    with pytest.raises(jsonschema.ValidationError):
        validator(kind).validate(payload | change)


def test_a_discrepancy_names_the_asset_type_of_its_position() -> None:
    option = attrs.evolve(quantity_mismatch(), asset_type=AssetType.OPTION)

    assert discrepancy_payload(result(), option)["asset_type"] == "option"


def test_a_per_currency_cash_mismatch_names_its_currency_and_no_asset_type() -> None:
    cash = Discrepancy(
        type=DiscrepancyType.CASH_MISMATCH,
        severity=DiscrepancySeverity.WARNING,
        symbol=None,
        local_value=Decimal("12000.00"),
        broker_value=Decimal("11990.00"),
        timestamp=AT,
        account_id="ACC-1",
        currency="EUR",
    )

    payload = discrepancy_payload(result(), cash)

    assert (payload["currency"], payload["asset_type"], payload["symbol"]) == ("EUR", None, None)
    validator("discrepancy").validate(payload)


@pytest.mark.parametrize(
    "change",
    [{"asset_type": None}, {"asset_type": "bond"}, {"currency": "EUR"}],
    ids=["a position without asset type", "an unknown asset type", "a currency on a quantity break"],
)
def test_the_schema_rejects_a_wrong_asset_type_or_currency(change: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator("discrepancy").validate(discrepancy_payload(result(), quantity_mismatch()) | change)


def test_a_discrepancy_recorded_before_asset_types_still_satisfies_the_schema() -> None:
    payload = discrepancy_payload(result(), quantity_mismatch())

    validator("discrepancy").validate(
        {k: v for k, v in payload.items() if k not in {"asset_type", "currency"}}
    )


@pytest.mark.parametrize("kind", ["result", "discrepancy"])
def test_the_schema_requires_every_contract_key(kind: str) -> None:
    run = result()
    payload = result_payload(run) if kind == "result" else discrepancy_payload(run, quantity_mismatch())

    for key in payload.keys() - {"netted", "asset_type", "currency", "suspect", "suspect_reason", "next_run_due"}:
        with pytest.raises(jsonschema.ValidationError):
            validator(kind).validate({k: v for k, v in payload.items() if k != key})


def within_bounds(value: Decimal) -> bool:
    """What the models accept (docs/configuration.md, Limits); the bounds have tests of their own."""
    return value.adjusted() < MAX_INTEGER_DIGITS and value.as_tuple().exponent >= -MAX_DECIMAL_PLACES  # type: ignore[operator]


exact_decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15).filter(within_bounds),
    st.builds(
        lambda digits, exponent: Decimal(digits).scaleb(exponent),
        st.integers(-(10**9), 10**9),
        st.integers(-12, 12),
    ),
)
_NAME_CHARACTERS = st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"))
"""What a name may hold (values.UNCARRIABLE: no control character, surrogate or line separator; the
few bidirectional controls left are filtered out)."""
names = st.text(_NAME_CHARACTERS, min_size=1, max_size=12).filter(lambda s: s.strip() and uncarriable_at(s) is None)
utc_times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001 (hypothesis bounds are naive)
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
)


@st.composite
def discrepancies(draw: st.DrawFn, account_id: str) -> Discrepancy:
    kind = draw(st.sampled_from(DiscrepancyType))
    return Discrepancy(
        type=kind,
        severity=draw(st.sampled_from(DiscrepancySeverity)),
        symbol=None if kind.is_account_level else draw(names),
        local_value=draw(st.none() | exact_decimals),
        broker_value=draw(st.none() | exact_decimals),
        timestamp=draw(utc_times),
        account_id=account_id,
        asset_type=None if kind.is_account_level else draw(st.sampled_from(AssetType)),
        currency=draw(st.none() | st.sampled_from(["USD", "EUR"]))
        if kind is DiscrepancyType.CASH_MISMATCH
        else None,
    )


@st.composite
def results(draw: st.DrawFn) -> ReconciliationResult:
    account_id = draw(names)
    return ReconciliationResult(
        run_id=draw(st.uuids(version=4)),
        account_id=account_id,
        timestamp=draw(utc_times),
        discrepancies=draw(st.lists(discrepancies(account_id), max_size=4)),
        positions_checked=draw(st.integers(0, 10_000)),
        duration_ms=draw(st.floats(0, 1e7, allow_nan=False)),
        context=draw(st.dictionaries(names, st.text(max_size=8), max_size=3)),
        error=draw(st.none() | st.text(min_size=1, max_size=40)),
        netted=draw(
            st.lists(
                st.builds(
                    NettedSymbol,
                    side=st.sampled_from(["local", "broker"]),
                    symbol=names,
                    entries=st.integers(2, 5),
                    asset_type=st.sampled_from(AssetType),
                ),
                max_size=2,
            )
        ),
    )


@given(results())
def test_every_result_payload_satisfies_the_schema(run: ReconciliationResult) -> None:
    validator("result").validate(json.loads(encode(result_payload(run))))


@given(results())
def test_every_discrepancy_payload_satisfies_the_schema(run: ReconciliationResult) -> None:
    for discrepancy in run.discrepancies:
        validator("discrepancy").validate(json.loads(encode(discrepancy_payload(run, discrepancy))))


def test_the_schemas_lists_are_the_models_values() -> None:
    defs = SCHEMA["$defs"]

    assert defs["discrepancy_type"]["enum"] == [kind.value for kind in DiscrepancyType]
    assert defs["severity"]["enum"] == [severity.value for severity in DiscrepancySeverity]
    assert defs["asset_type"]["enum"] == [asset.value for asset in AssetType]
    assert defs["correction"]["properties"]["status"]["enum"] == [status.value for status in CorrectionStatus]
    account_level = defs["subject"]["allOf"][0]["if"]["properties"]["type"]["enum"]
    assert account_level == [kind.value for kind in DiscrepancyType if kind.is_account_level]


@given(results())
def test_the_readers_accept_every_payload_a_run_publishes(run: ReconciliationResult) -> None:
    sightings = tuple(
        Sighting(uuid.uuid4(), d.timestamp, d.timestamp, 1, run.run_id, run.run_id, None, d.severity, d)
        for d in run.discrepancies
    )
    halts = tuple(s.state() for s in sightings if s.severity is DiscrepancySeverity.CRITICAL)
    ageing = AgeingUpdate(run.run_id, run.account_id, sightings, ended=sightings, halts=halts, timestamp=run.timestamp)
    stream_of = {channel: stream for stream, channel in STREAMS.items()}

    for channel, text in iter_payloads(run, ageing):
        message = decode(StreamEntry(stream_of[channel], "1-0", text.encode(), replayed=False))
        assert message.problem is None, (channel, text)


@given(results())
def test_the_encoded_result_reads_back_to_the_run(run: ReconciliationResult) -> None:
    payload = json.loads(encode(result_payload(run)))

    assert uuid.UUID(payload["run_id"]) == run.run_id
    assert dt.datetime.fromisoformat(payload["timestamp"]) == run.timestamp
    assert payload["is_clean"] is run.is_clean
    assert payload["status"] == ("ok" if run.error is None else "failed")
    assert payload["error"] == run.error
    assert payload["discrepancy_count"] == len(run.discrepancies)
    assert payload["duration_ms"] == run.duration_ms
    assert payload["context"] == dict(run.context)


@given(results())
def test_encoded_decimals_read_back_to_the_exact_value(run: ReconciliationResult) -> None:
    for discrepancy in run.discrepancies:
        payload = json.loads(encode(discrepancy_payload(run, discrepancy)))
        for side, value in (
            ("local_value", discrepancy.local_value),
            ("broker_value", discrepancy.broker_value),
        ):
            if value is None:
                assert payload[side] is None
            else:
                assert PLAIN_DECIMAL.match(payload[side])
                assert Decimal(payload[side]) == value


@given(results())
def test_every_run_gives_one_result_then_one_payload_per_discrepancy(run: ReconciliationResult) -> None:
    channels = [channel for channel, _ in iter_payloads(run)]

    assert channels == [RESULT_CHANNEL] + [DISCREPANCY_CHANNEL] * len(run.discrepancies)


_SYMBOLS = st.text(_NAME_CHARACTERS, min_size=1, max_size=40).filter(lambda s: s.strip() and uncarriable_at(s) is None)
_VALUES = st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(within_bounds)


@settings(max_examples=500, deadline=None)
@given(
    symbol=_SYMBOLS,
    account=_SYMBOLS,
    local=_VALUES,
    broker=_VALUES,
    aged=st.booleans(),
    runs=st.integers(min_value=1, max_value=10**6),
    asset_type=st.sampled_from(list(AssetType)),
    currency=st.none() | _SYMBOLS,
)
def test_a_discrepancy_payload_built_as_text_is_what_the_encoder_writes(
    symbol: str,
    account: str,
    local: Decimal | None,
    broker: Decimal | None,
    aged: bool,
    runs: int,
    asset_type: AssetType,
    currency: str | None,
) -> None:
    if currency is None:
        discrepancy = Discrepancy(
            DiscrepancyType.QUANTITY_MISMATCH,
            DiscrepancySeverity.CRITICAL,
            symbol,
            local,
            broker,
            AT,
            account,
            asset_type=asset_type,
        )
    else:
        discrepancy = Discrepancy(
            DiscrepancyType.CASH_MISMATCH, DiscrepancySeverity.WARNING, None, local, broker, AT, account, currency=currency
        )
    result = ReconciliationResult(uuid.uuid4(), account, AT, [discrepancy])
    sighting = Sighting(uuid.uuid4(), AT, AT, runs, result.run_id, result.run_id, None, discrepancy.severity, discrepancy)
    reference: dict[str, object] = {
        "run_id": str(result.run_id),
        "type": discrepancy.type.value,
        "severity": discrepancy.severity.value,
        "symbol": discrepancy.symbol,
        "asset_type": None if discrepancy.asset_type is None else discrepancy.asset_type.value,
        "currency": currency,
        "local_value": None if local is None else format(local, "f"),
        "broker_value": None if broker is None else format(broker, "f"),
        "timestamp": AT.isoformat(timespec="microseconds"),
        "account_id": account,
    }
    if aged:
        reference |= {"break_id": str(sighting.break_id), "first_seen": reference["timestamp"], "consecutive_runs": runs}
    ageing = AgeingUpdate(result.run_id, account, sightings=(sighting,) if aged else (), timestamp=AT)
    (_, text) = iter_payloads(result, ageing)[1]
    assert text == encode(reference)
