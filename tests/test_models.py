"""The value objects: what they accept, what they refuse at construction, and how they compare."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest

from reconciliation._domain.models import (
    DEFAULT_SEVERITY,
    KINDS,
    AssetType,
    BrokerAccount,
    BrokerPosition,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    LocalAccount,
    OrderFill,
    Position,
    ReconciliationConfig,
    ReconciliationResult,
    Snapshot,
)
from reconciliation._domain.values import FieldError

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def position(**changes: Any) -> Position:
    return Position(**{"symbol": "AAPL", "quantity": 100, "avg_cost": Decimal("150.25"), **changes})


def broker_position(**changes: Any) -> BrokerPosition:
    fields = {"symbol": "AAPL", "quantity": 100, "avg_cost": Decimal(150), "market_value": Decimal(15000)}
    return BrokerPosition(**{**fields, **changes})


def local_account(**changes: Any) -> LocalAccount:
    return LocalAccount(
        **{"account_id": "ACC-1", "cash": Decimal(1000), "total_equity": Decimal(2000), **changes}
    )


def broker_account(**changes: Any) -> BrokerAccount:
    fields = {
        "account_id": "ACC-1",
        "cash": Decimal(1000),
        "buying_power": Decimal(4000),
        "total_equity": Decimal(2000),
        "margin_used": Decimal(0),
    }
    return BrokerAccount(**{**fields, **changes})


def order_fill(**changes: Any) -> OrderFill:
    fields = {
        "order_id": "ORD-1",
        "fill_id": "FILL-1",
        "account_id": "ACC-1",
        "symbol": "AAPL",
        "quantity": 10,
        "price": Decimal("150.25"),
        "timestamp": NOW,
    }
    return OrderFill(**{**fields, **changes})


def discrepancy(**changes: Any) -> Discrepancy:
    fields = {
        "type": DiscrepancyType.QUANTITY_MISMATCH,
        "severity": DiscrepancySeverity.CRITICAL,
        "symbol": "AAPL",
        "local_value": Decimal(100),
        "broker_value": Decimal(150),
        "timestamp": NOW,
        "account_id": "ACC-1",
    }
    return Discrepancy(**{**fields, **changes})


def result(**changes: Any) -> ReconciliationResult:
    fields = {"run_id": uuid.UUID(int=1), "account_id": "ACC-1", "timestamp": NOW}
    return ReconciliationResult(**{**fields, **changes})


def snapshot(**changes: Any) -> Snapshot:
    fields = {
        "account_id": "ACC-1",
        "local_positions": [position()],
        "local_account": local_account(),
        "broker_positions": [broker_position()],
        "broker_account": broker_account(),
        "taken_at": NOW,
    }
    return Snapshot(**{**fields, **changes})


DECIMAL_FIELDS = [
    (position, "quantity"),
    (position, "avg_cost"),
    (broker_position, "quantity"),
    (broker_position, "avg_cost"),
    (broker_position, "market_value"),
    (local_account, "cash"),
    (local_account, "total_equity"),
    (broker_account, "cash"),
    (broker_account, "buying_power"),
    (broker_account, "total_equity"),
    (broker_account, "margin_used"),
    (order_fill, "quantity"),
    (order_fill, "price"),
    (order_fill, "commission"),
    (order_fill, "multiplier"),
    (discrepancy, "local_value"),
    (discrepancy, "broker_value"),
]
DECIMAL_IDS = [f"{build.__name__}.{name}" for build, name in DECIMAL_FIELDS]

TIME_FIELDS = [
    (order_fill, "timestamp"),
    (discrepancy, "timestamp"),
    (result, "timestamp"),
    (snapshot, "taken_at"),
]
TIME_IDS = [f"{build.__name__}.{name}" for build, name in TIME_FIELDS]

TEXT_FIELDS = [
    (position, "symbol"),
    (broker_position, "symbol"),
    (local_account, "account_id"),
    (broker_account, "account_id"),
    (order_fill, "order_id"),
    (order_fill, "fill_id"),
    (order_fill, "account_id"),
    (order_fill, "symbol"),
    (discrepancy, "symbol"),
    (discrepancy, "account_id"),
    (result, "account_id"),
    (snapshot, "account_id"),
]
TEXT_IDS = [f"{build.__name__}.{name}" for build, name in TEXT_FIELDS]


class TestDecimalFields:
    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_float_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(
            TypeError,
            match=rf"^{name} must be a Decimal, an int or an exact decimal string, not the float 1\.5",
        ):
            build(**{name: 1.5})

    def test_float_refusal_names_the_cure_without_suggesting_decimal_of_str(self) -> None:
        with pytest.raises(TypeError) as refused:
            position(quantity=3 * 0.1)

        assert "the decimal text the venue sent" in str(refused.value)
        assert "exchange.number = Decimal" in str(refused.value)
        assert "Decimal(str(" not in str(refused.value)
        assert "Decimal('0.30000000000000004')" not in str(refused.value)

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_decimal_made_from_a_float_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(
            ValueError, match=rf"^{name} is 1\.1000000000000000888\d*, a Decimal made from the float 1\.1"
        ):
            build(**{name: Decimal(1.1)})  # noqa: RUF032 - the mistake under test

    def test_decimal_made_from_a_computed_float_refused_without_suggesting_decimal_of_str(self) -> None:
        with pytest.raises(ValueError, match=r"made from the float 0\.30000000000000004") as refused:
            position(avg_cost=Decimal(3 * 0.1))

        assert "exchange.number = Decimal" in str(refused.value)
        assert "Decimal(str(" not in str(refused.value)

    @pytest.mark.parametrize(
        "value",
        [
            Decimal("33.33333333333333333333333333"),
            Decimal("0.1000000000000000055511151231257827"),
            Decimal("187.12000000000000000000"),
            Decimal(0.5),  # noqa: RUF032 - exact: a binary fraction
            Decimal(2.0**60),
        ],
        ids=[
            "a rounded division",
            "a long decimal near a float",
            "trailing zeros",
            "an exact binary fraction",
            "a whole number",
        ],
    )
    def test_exact_decimals_with_many_digits_accepted(self, value: Decimal) -> None:
        assert position(avg_cost=value).avg_cost == value

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    @pytest.mark.parametrize(
        "value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")]
    )
    def test_nan_and_infinity_refused_naming_the_field(self, build: Any, name: str, value: Decimal) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number"):
            build(**{name: value})

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_bool_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(
            TypeError, match=rf"^{name} must be a Decimal, an int or an exact decimal string, not bool"
        ):
            build(**{name: True})

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_exact_decimal_string_accepted_as_the_decimal_it_spells(self, build: Any, name: str) -> None:
        value = getattr(build(**{name: "0.523419"}), name)

        assert type(value) is Decimal
        assert str(value) == "0.523419"

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_text_that_is_not_a_number_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(
            ValueError, match=rf"^{name} must be .* not the text '1,5', which is not a number"
        ):
            build(**{name: "1,5"})

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_nan_text_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number"):
            build(**{name: "NaN"})

    def test_a_position_from_the_venues_text(self) -> None:
        assert Position("AAPL", "0.523419", "187.5") == Position(
            "AAPL", Decimal("0.523419"), Decimal("187.5")
        )

    @pytest.mark.parametrize(("build", "name"), DECIMAL_FIELDS, ids=DECIMAL_IDS)
    def test_int_kept_exact(self, build: Any, name: str) -> None:
        value = getattr(build(**{name: 12345678901234567890123456789}), name)

        assert type(value) is Decimal
        assert value == Decimal(12345678901234567890123456789)

    def test_decimal_kept_as_given(self) -> None:
        assert str(position(avg_cost=Decimal("150.2500")).avg_cost) == "150.2500"

    def test_negative_quantity_is_a_short(self) -> None:
        assert position(quantity=-5).quantity == Decimal(-5)

    def test_fractional_quantity_accepted(self) -> None:
        assert position(quantity=Decimal("0.00012345")).quantity == Decimal("0.00012345")

    @pytest.mark.parametrize("build", [position, broker_position])
    def test_unknown_average_cost_is_none(self, build: Any) -> None:
        assert build(avg_cost=None).avg_cost is None

    def test_missing_values_may_be_none_in_a_discrepancy(self) -> None:
        missing = discrepancy(type=DiscrepancyType.MISSING_LOCAL, local_value=None)

        assert missing.local_value is None


class TestTimestamps:
    @pytest.mark.parametrize(("build", "name"), TIME_FIELDS, ids=TIME_IDS)
    def test_naive_datetime_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must be timezone-aware"):
            build(**{name: dt.datetime(2026, 11, 25, 10, 0)})  # noqa: DTZ001 - the naive value under test

    @pytest.mark.parametrize(("build", "name"), TIME_FIELDS, ids=TIME_IDS)
    def test_non_datetime_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(TypeError, match=rf"^{name} must be a timezone-aware datetime"):
            build(**{name: "2026-11-25T10:00:00+00:00"})

    @pytest.mark.parametrize(("build", "name"), TIME_FIELDS, ids=TIME_IDS)
    def test_other_timezone_converted_to_utc(self, build: Any, name: str) -> None:
        paris = dt.timezone(dt.timedelta(hours=1))

        value = getattr(build(**{name: dt.datetime(2026, 11, 25, 11, 0, tzinfo=paris)}), name)

        assert value == NOW
        assert value.utcoffset() == dt.timedelta(0)


class TestNames:
    @pytest.mark.parametrize(("build", "name"), TEXT_FIELDS, ids=TEXT_IDS)
    @pytest.mark.parametrize("value", ["", "   "])
    def test_empty_refused_naming_the_field(self, build: Any, name: str, value: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must not be empty"):
            build(**{name: value})

    @pytest.mark.parametrize(("build", "name"), TEXT_FIELDS, ids=TEXT_IDS)
    def test_non_string_refused_naming_the_field(self, build: Any, name: str) -> None:
        with pytest.raises(TypeError, match=rf"^{name} must be a str"):
            build(**{name: 42})


class TestPositionsAndFills:
    def test_asset_type_defaults_to_stock(self) -> None:
        assert position().asset_type is AssetType.STOCK
        assert broker_position().asset_type is AssetType.STOCK
        assert order_fill().asset_type is AssetType.STOCK

    def test_asset_type_must_be_the_enum(self) -> None:
        with pytest.raises(TypeError, match="asset_type"):
            position(asset_type="stock")

    def test_fill_defaults_no_commission_and_multiplier_one(self) -> None:
        fill = order_fill()

        assert (fill.commission, fill.multiplier) == (Decimal(0), Decimal(1))

    def test_zero_quantity_fill_refused(self) -> None:
        with pytest.raises(ValueError, match="quantity must not be 0"):
            order_fill(quantity=0)

    @pytest.mark.parametrize("multiplier", [0, -100])
    def test_non_positive_multiplier_refused(self, multiplier: int) -> None:
        with pytest.raises(ValueError, match="multiplier must be more than 0"):
            order_fill(multiplier=multiplier)


class TestDiscrepancy:
    @pytest.mark.parametrize("kind", [DiscrepancyType.CASH_MISMATCH, DiscrepancyType.EQUITY_MISMATCH])
    def test_account_level_types_refuse_a_symbol(self, kind: DiscrepancyType) -> None:
        with pytest.raises(ValueError, match="symbol must be None"):
            discrepancy(type=kind, symbol="AAPL")

    @pytest.mark.parametrize("kind", [DiscrepancyType.CASH_MISMATCH, DiscrepancyType.EQUITY_MISMATCH])
    def test_account_level_types_take_no_symbol(self, kind: DiscrepancyType) -> None:
        assert discrepancy(type=kind, symbol=None).symbol is None

    def test_position_types_require_a_symbol(self) -> None:
        with pytest.raises(TypeError, match="symbol must be a str"):
            discrepancy(type=DiscrepancyType.MISSING_LOCAL, symbol=None)

    def test_key_is_account_type_symbol_asset_type_and_currency(self) -> None:
        assert discrepancy(asset_type=AssetType.OPTION).key == (
            "ACC-1",
            DiscrepancyType.QUANTITY_MISMATCH,
            "AAPL",
            AssetType.OPTION,
            None,
        )

    def test_a_stock_and_an_option_on_one_symbol_are_two_keys(self) -> None:
        assert discrepancy().key != discrepancy(asset_type=AssetType.OPTION).key

    def test_position_types_default_to_stock(self) -> None:
        assert discrepancy().asset_type is AssetType.STOCK

    @pytest.mark.parametrize("kind", [DiscrepancyType.CASH_MISMATCH, DiscrepancyType.EQUITY_MISMATCH])
    def test_account_level_types_have_no_asset_type(self, kind: DiscrepancyType) -> None:
        assert discrepancy(type=kind, symbol=None).asset_type is None

    def test_account_level_types_refuse_an_asset_type(self) -> None:
        with pytest.raises(ValueError, match="asset_type must be None for an account-level cash_mismatch"):
            discrepancy(type=DiscrepancyType.CASH_MISMATCH, symbol=None, asset_type=AssetType.STOCK)

    def test_position_types_refuse_no_asset_type(self) -> None:
        with pytest.raises(TypeError, match="asset_type of a quantity_mismatch must be an AssetType"):
            discrepancy(asset_type=None)

    def test_a_per_currency_cash_mismatch_is_keyed_by_its_currency(self) -> None:
        eur = discrepancy(type=DiscrepancyType.CASH_MISMATCH, symbol=None, currency="EUR")
        usd = discrepancy(type=DiscrepancyType.CASH_MISMATCH, symbol=None, currency="USD")

        assert eur.key == ("ACC-1", DiscrepancyType.CASH_MISMATCH, None, None, "EUR")
        assert eur.key != usd.key

    @pytest.mark.parametrize(
        ("changes", "subject"),
        [
            ({}, "AAPL"),
            ({"asset_type": AssetType.OPTION}, "AAPL (option)"),
            ({"type": DiscrepancyType.CASH_MISMATCH, "symbol": None, "currency": "EUR"}, "EUR"),
            ({"type": DiscrepancyType.EQUITY_MISMATCH, "symbol": None}, None),
        ],
        ids=["a stock", "an option", "cash in one currency", "the account"],
    )
    def test_subject_names_what_it_is_about_for_people(
        self, changes: dict[str, Any], subject: str | None
    ) -> None:
        assert discrepancy(**changes).subject == subject

    def test_only_a_cash_mismatch_has_a_currency(self) -> None:
        with pytest.raises(
            ValueError, match="currency is only given for a cash_mismatch, not a equity_mismatch"
        ):
            discrepancy(type=DiscrepancyType.EQUITY_MISMATCH, symbol=None, currency="EUR")

    def test_type_must_be_the_enum(self) -> None:
        with pytest.raises(TypeError, match="type"):
            discrepancy(type="quantity_mismatch")


class TestCashByCurrency:
    @pytest.mark.parametrize("build", [local_account, broker_account])
    def test_none_by_default(self, build: Any) -> None:
        assert build().cash_by_currency is None

    @pytest.mark.parametrize("build", [local_account, broker_account])
    def test_amounts_kept_exact_from_text(self, build: Any) -> None:
        account = build(cash_by_currency={"USD": "78935.08", "EUR": 12000})

        assert dict(account.cash_by_currency) == {"USD": Decimal("78935.08"), "EUR": Decimal(12000)}

    @pytest.mark.parametrize("build", [local_account, broker_account])
    def test_float_amount_refused_naming_the_currency(self, build: Any) -> None:
        with pytest.raises(TypeError, match=r"^cash_by_currency\['EUR'\] must be a Decimal"):
            build(cash_by_currency={"EUR": 12000.5})

    @pytest.mark.parametrize("build", [local_account, broker_account])
    def test_empty_currency_refused(self, build: Any) -> None:
        with pytest.raises(ValueError, match="cash_by_currency has the key ''"):
            build(cash_by_currency={"": 1})

    @pytest.mark.parametrize("build", [local_account, broker_account])
    def test_not_a_mapping_refused(self, build: Any) -> None:
        with pytest.raises(TypeError, match="cash_by_currency must be a mapping"):
            build(cash_by_currency=[("EUR", 1)])

    def test_read_only_and_hashable(self) -> None:
        account = local_account(cash_by_currency={"EUR": 1})

        with pytest.raises(TypeError):
            account.cash_by_currency["EUR"] = Decimal(2)  # type: ignore[index]
        assert hash(account) == hash(local_account(cash_by_currency={"EUR": Decimal(1)}))


class TestEnums:
    def test_discrepancy_type_values(self) -> None:
        assert {t.value for t in DiscrepancyType} == {
            "missing_local",
            "missing_broker",
            "quantity_mismatch",
            "cost_mismatch",
            "cash_mismatch",
            "equity_mismatch",
        }

    def test_severity_values_ranked(self) -> None:
        assert [s.value for s in sorted(DiscrepancySeverity, key=lambda s: s.rank)] == [
            "info",
            "warning",
            "critical",
        ]

    def test_asset_types(self) -> None:
        assert {a.name for a in AssetType} >= {"STOCK", "OPTION", "FUTURE"}

    def test_asset_types_for_crypto_venues(self) -> None:
        assert (AssetType("swap"), AssetType("crypto")) == (AssetType.SWAP, AssetType.CRYPTO)

    def test_default_severity_is_the_design_table(self) -> None:
        assert dict(DEFAULT_SEVERITY) == {
            DiscrepancyType.COST_MISMATCH: DiscrepancySeverity.INFO,
            DiscrepancyType.CASH_MISMATCH: DiscrepancySeverity.WARNING,
            DiscrepancyType.EQUITY_MISMATCH: DiscrepancySeverity.WARNING,
            DiscrepancyType.QUANTITY_MISMATCH: DiscrepancySeverity.CRITICAL,
            DiscrepancyType.MISSING_LOCAL: DiscrepancySeverity.CRITICAL,
            DiscrepancyType.MISSING_BROKER: DiscrepancySeverity.CRITICAL,
        }

    def test_default_severity_is_read_only(self) -> None:
        with pytest.raises(TypeError):
            DEFAULT_SEVERITY[DiscrepancyType.COST_MISMATCH] = DiscrepancySeverity.CRITICAL  # type: ignore[index]


class TestConfig:
    def test_defaults_match_the_contract(self) -> None:
        config = ReconciliationConfig("ACC-1")

        assert (
            config.interval_seconds,
            config.post_fill_delay_seconds,
            config.cash_tolerance,
            config.equity_tolerance_pct,
            config.enabled,
            config.broker_timeout_seconds,
        ) == (300, 5.0, Decimal("1.00"), Decimal("0.1"), True, 30.0)
        assert dict(config.severity_overrides) == {}

    def test_fractional_seconds_accepted(self) -> None:
        config = ReconciliationConfig("ACC-1", interval_seconds=Decimal("0.25"), post_fill_delay_seconds=0.05)

        assert (config.interval_seconds, config.post_fill_delay_seconds) == (0.25, 0.05)

    @pytest.mark.parametrize(
        "name", ["interval_seconds", "post_fill_delay_seconds", "broker_timeout_seconds"]
    )
    def test_negative_duration_refused_naming_the_field(self, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must not be negative"):
            ReconciliationConfig("ACC-1", **{name: -1})

    @pytest.mark.parametrize("name", ["interval_seconds", "broker_timeout_seconds"])
    def test_zero_interval_or_timeout_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must be more than 0"):
            ReconciliationConfig("ACC-1", **{name: 0})

    def test_infinite_interval_refused(self) -> None:
        with pytest.raises(ValueError, match="interval_seconds must be a finite number"):
            ReconciliationConfig("ACC-1", interval_seconds=float("inf"))

    @pytest.mark.parametrize("name", ["cash_tolerance", "equity_tolerance_pct"])
    def test_negative_tolerance_refused_naming_the_field(self, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must not be negative"):
            ReconciliationConfig("ACC-1", **{name: Decimal("-0.01")})

    @pytest.mark.parametrize("name", ["cash_tolerance", "equity_tolerance_pct", "cost_tolerance_pct"])
    def test_float_tolerance_refused_naming_the_field(self, name: str) -> None:
        with pytest.raises(
            TypeError, match=rf"^{name} must be a Decimal, an int or an exact decimal string, not the float"
        ):
            ReconciliationConfig("ACC-1", **{name: 0.1})

    def test_costs_compared_exactly_by_default(self) -> None:
        assert ReconciliationConfig("ACC-1").cost_tolerance_pct == 0

    def test_negative_cost_tolerance_refused(self) -> None:
        with pytest.raises(ValueError, match=r"^cost_tolerance_pct must not be negative"):
            ReconciliationConfig("ACC-1", cost_tolerance_pct="-0.01")

    def test_a_currency_without_its_own_cash_tolerance_uses_cash_tolerance(self) -> None:
        config = ReconciliationConfig("ACC-1", cash_tolerance="1.00", cash_tolerance_by_currency={"JPY": 150})

        assert (config.cash_tolerance_of("JPY"), config.cash_tolerance_of("EUR")) == (150, Decimal("1.00"))

    def test_the_default_cash_tolerance_is_in_usd_and_its_stablecoins(self) -> None:
        config = ReconciliationConfig("ACC-1")

        assert config.cash_tolerance_is_default
        assert [config.cash_tolerance_of(c) for c in ("USD", "USDT", "USDC", "BTC", "EUR")] == [
            Decimal("1.00"),
            Decimal("1.00"),
            Decimal("1.00"),
            0,
            0,
        ]
        assert (config.has_cash_tolerance_in("USDT"), config.has_cash_tolerance_in("BTC")) == (True, False)

    def test_a_cash_tolerance_given_even_at_the_default_amount_applies_to_every_currency(self) -> None:
        config = ReconciliationConfig("ACC-1", cash_tolerance=Decimal("1.00"))

        assert not config.cash_tolerance_is_default
        assert (config.has_cash_tolerance_in("BTC"), config.cash_tolerance_of("BTC")) == (True, Decimal("1.00"))

    def test_a_changed_copy_keeps_the_default_cash_tolerance(self) -> None:
        config = attrs.evolve(ReconciliationConfig("ACC-1"), interval_seconds=60)

        assert config.cash_tolerance_is_default

    def test_negative_cash_tolerance_of_a_currency_refused_naming_it(self) -> None:
        with pytest.raises(ValueError, match=r"^cash_tolerance_by_currency\['EUR'\] must not be negative"):
            ReconciliationConfig("ACC-1", cash_tolerance_by_currency={"EUR": "-1"})

    def test_float_cash_tolerance_of_a_currency_refused_naming_it(self) -> None:
        with pytest.raises(TypeError, match=r"^cash_tolerance_by_currency\['EUR'\] must be a Decimal"):
            ReconciliationConfig("ACC-1", cash_tolerance_by_currency={"EUR": 0.5})

    def test_zero_tolerances_accepted(self) -> None:
        config = ReconciliationConfig("ACC-1", cash_tolerance=0, equity_tolerance_pct=0)

        assert (config.cash_tolerance, config.equity_tolerance_pct) == (0, 0)

    def test_empty_account_refused(self) -> None:
        with pytest.raises(ValueError, match="account_id must not be empty"):
            ReconciliationConfig("")

    def test_enabled_must_be_a_bool(self) -> None:
        with pytest.raises(TypeError, match="enabled"):
            ReconciliationConfig("ACC-1", enabled=0)  # type: ignore[arg-type]

    def test_max_wait_shorter_than_the_delay_refused(self) -> None:
        with pytest.raises(ValueError, match="post_fill_max_wait_seconds"):
            ReconciliationConfig("ACC-1", post_fill_delay_seconds=10, post_fill_max_wait_seconds=5)

    @pytest.mark.parametrize(
        ("options", "field", "key"),
        [
            ({"account_id": ""}, "account_id", None),
            ({"interval_seconds": -1}, "interval_seconds", None),
            ({"cash_tolerance": 0.1}, "cash_tolerance", None),
            ({"cash_tolerance_by_currency": {"EUR": "-1"}}, "cash_tolerance_by_currency", "EUR"),
            ({"cash_tolerance_by_currency": {"JPY": 0.5}}, "cash_tolerance_by_currency", "JPY"),
            ({"enabled": 0}, "enabled", None),
            ({"severity_overrides": {"cash_mismatch": "loud"}}, "severity_overrides", None),
            ({"post_fill_delay_seconds": 10, "post_fill_max_wait_seconds": 5}, "post_fill_max_wait_seconds", None),
            ({"stream_maxlen": 0}, "stream_maxlen", None),
            ({"ageing": None}, "ageing", None),
            ({"audit_store": "mysql://h/db"}, "audit_store", None),
            ({"correction": "apply"}, "correction", None),
        ],
    )
    def test_a_refusal_carries_the_field_it_refuses(
        self, options: dict[str, object], field: str, key: str | None
    ) -> None:
        with pytest.raises(FieldError) as refused:
            ReconciliationConfig(**{"account_id": "ACC-1", **options})  # type: ignore[arg-type]

        assert (refused.value.field, refused.value.key) == (field, key)
        assert isinstance(refused.value, TypeError | ValueError)

    @pytest.mark.parametrize("name", ["stream_maxlen", "outbox_max_runs"])
    def test_counts_must_be_positive_whole_numbers(self, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must be at least 1"):
            ReconciliationConfig("ACC-1", **{name: 0})
        with pytest.raises(TypeError, match=rf"^{name} must be a whole number"):
            ReconciliationConfig("ACC-1", **{name: 1.5})


class TestSeverityOverrides:
    def test_override_by_enum(self) -> None:
        config = ReconciliationConfig(
            "ACC-1", severity_overrides={DiscrepancyType.CASH_MISMATCH: DiscrepancySeverity.CRITICAL}
        )

        assert config.severity_of(DiscrepancyType.CASH_MISMATCH) is DiscrepancySeverity.CRITICAL

    def test_override_by_string(self) -> None:
        config = ReconciliationConfig("ACC-1", severity_overrides={"cost_mismatch": "warning"})

        assert config.severity_of(DiscrepancyType.COST_MISMATCH) is DiscrepancySeverity.WARNING

    def test_types_not_overridden_keep_the_default(self) -> None:
        config = ReconciliationConfig("ACC-1", severity_overrides={"cost_mismatch": "warning"})

        assert {
            kind: config.severity_of(kind) for kind in DiscrepancyType if kind.value != "cost_mismatch"
        } == {kind: severity for kind, severity in DEFAULT_SEVERITY.items() if kind.value != "cost_mismatch"}

    def test_unknown_type_refused_listing_the_known_ones(self) -> None:
        with pytest.raises(ValueError, match=r"unknown discrepancy type 'cash'.*cash_mismatch"):
            ReconciliationConfig("ACC-1", severity_overrides={"cash": "info"})

    def test_unknown_severity_refused_listing_the_known_ones(self) -> None:
        with pytest.raises(ValueError, match=r"unknown severity 'urgent'.*critical"):
            ReconciliationConfig("ACC-1", severity_overrides={"cash_mismatch": "urgent"})

    def test_overrides_cannot_be_changed_afterwards(self) -> None:
        given = {"cash_mismatch": "info"}
        config = ReconciliationConfig("ACC-1", severity_overrides=given)
        given["cash_mismatch"] = "critical"

        assert config.severity_of(DiscrepancyType.CASH_MISMATCH) is DiscrepancySeverity.INFO
        with pytest.raises(TypeError):
            config.severity_overrides[DiscrepancyType.CASH_MISMATCH] = DiscrepancySeverity.CRITICAL  # type: ignore[index]


class TestResult:
    def test_no_discrepancies_and_no_error_is_clean(self) -> None:
        clean = result()

        assert (clean.is_clean, clean.status) == (True, "ok")

    def test_a_discrepancy_is_not_clean_but_ok(self) -> None:
        found = result(discrepancies=[discrepancy()])

        assert (found.is_clean, found.status) == (False, "ok")

    def test_an_error_is_failed_and_never_clean(self) -> None:
        failed = result(error="broker timed out after 30.0 s")

        assert (failed.is_clean, failed.status) == (False, "failed")

    def test_discrepancies_stored_as_a_tuple(self) -> None:
        assert result(discrepancies=[discrepancy()]).discrepancies == (discrepancy(),)

    def test_context_is_read_only_and_a_copy(self) -> None:
        given = {"trigger": "periodic"}
        periodic = result(context=given)
        given["trigger"] = "startup"

        assert periodic.trigger == "periodic"
        with pytest.raises(TypeError):
            periodic.context["trigger"] = "startup"  # type: ignore[index]

    def test_trigger_unknown_without_context(self) -> None:
        assert result().trigger == "unknown"


class TestImmutabilityAndEquality:
    @pytest.mark.parametrize(
        ("build", "name"),
        [
            (position, "quantity"),
            (broker_position, "quantity"),
            (local_account, "cash"),
            (broker_account, "cash"),
            (order_fill, "price"),
            (discrepancy, "severity"),
            (result, "error"),
            (snapshot, "taken_at"),
        ],
    )
    def test_frozen(self, build: Any, name: str) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(build(), name, None)

    def test_config_frozen(self) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            ReconciliationConfig("ACC-1").enabled = False  # type: ignore[misc]

    @pytest.mark.parametrize(
        "build",
        [position, broker_position, local_account, broker_account, order_fill, discrepancy, result, snapshot],
    )
    def test_equal_by_value(self, build: Any) -> None:
        assert build() == build()

    @pytest.mark.parametrize(
        "build", [position, broker_position, local_account, broker_account, order_fill, discrepancy, snapshot]
    )
    def test_equal_values_hash_alike(self, build: Any) -> None:
        assert hash(build()) == hash(build())

    @pytest.mark.parametrize(
        "build", [result, lambda: ReconciliationConfig("ACC-1")], ids=["result", "config"]
    )
    def test_results_and_configs_hash_alike(self, build: Any) -> None:
        assert hash(build()) == hash(build())

    def test_int_and_decimal_quantities_compare_equal(self) -> None:
        assert position(quantity=100) == position(quantity=Decimal("100.00"))

    def test_different_values_are_not_equal(self) -> None:
        assert position(quantity=100) != position(quantity=101)

    def test_snapshot_stores_positions_as_tuples(self) -> None:
        taken = snapshot()

        assert taken.local_positions == (position(),)
        assert taken.broker_positions == (broker_position(),)


def test_an_audit_store_of_an_unknown_kind_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="audit_store: unknown URL scheme 'mysql'"):
        ReconciliationConfig("ACC-1", audit_store="mysql://db/recon")


@pytest.mark.parametrize("target", ["audit.db", "sqlite:///audit.db", "postgresql://db/recon"])
def test_an_audit_store_is_a_path_or_a_sqlite_or_postgresql_url(target: str) -> None:
    assert ReconciliationConfig("ACC-1", audit_store=target).audit_store == target


def test_is_clean_is_derived_and_cannot_be_given() -> None:
    with pytest.raises(TypeError, match="is_clean"):
        ReconciliationResult(  # type: ignore[call-arg]
            run_id=uuid.uuid4(), account_id="ACC-1", timestamp=dt.datetime.now(dt.UTC), is_clean=True
        )


def test_evolving_a_clean_result_into_a_failed_one_recomputes_is_clean() -> None:
    clean = ReconciliationResult(run_id=uuid.uuid4(), account_id="ACC-1", timestamp=dt.datetime.now(dt.UTC))
    failed = attrs.evolve(clean, error="the broker timed out")
    assert (clean.is_clean, failed.is_clean, failed.status) == (True, False, "failed")


def test_the_longest_post_fill_wait_defaults_to_the_delay_when_that_is_longer_than_a_minute() -> None:
    config = ReconciliationConfig("ACC-1", post_fill_delay_seconds=120)
    assert config.post_fill_max_wait_seconds == 120


def test_the_longest_post_fill_wait_defaults_to_a_minute() -> None:
    assert ReconciliationConfig("ACC-1", post_fill_delay_seconds=5).post_fill_max_wait_seconds == 60


def test_an_interval_past_the_platforms_longest_timer_is_refused_with_the_way_to_turn_runs_off() -> None:
    with pytest.raises(ValueError, match=r"interval_seconds must be at most .* enabled=False"):
        ReconciliationConfig("ACC-1", interval_seconds=1e12)


def test_a_stream_length_past_redis_s_integers_is_refused() -> None:
    with pytest.raises(ValueError, match="stream_maxlen must be at most 9223372036854775807"):
        ReconciliationConfig("ACC-1", stream_maxlen=2**63)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (Decimal("1E+999999999"), "beyond what this service accepts"),
        (Decimal("1E+30"), "beyond what this service accepts"),
        (Decimal("1E-61"), "beyond what this service accepts"),
    ],
    ids=["a broken feed's exponent", "the magnitude bound", "the precision bound"],
)
def test_a_figure_past_the_documented_bounds_is_refused_naming_the_field(value: Decimal, why: str) -> None:
    with pytest.raises(ValueError, match=f"^quantity is .*{why}"):
        Position("AAPL", value, Decimal(1))


def test_figures_inside_the_bounds_are_kept_exact() -> None:
    assert Position("AAPL", Decimal("9" * 29), Decimal("0." + "0" * 59 + "1")).quantity == Decimal("9" * 29)


def test_a_symbol_longer_than_the_documented_bound_is_refused_without_echoing_it_whole() -> None:
    with pytest.raises(ValueError, match="symbol is 10000000 characters long") as refused:
        Position("A" * 10_000_000, 1, 1)
    assert len(str(refused.value)) < 300


def test_an_audit_store_url_with_an_unknown_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(ValueError, match="unknown URL scheme 'mysql'") as refused:
        ReconciliationConfig("ACC-1", audit_store="mysql://auditor:hunter2@db/recon")
    assert "hunter2" not in str(refused.value)


class TestDiscrepancyKinds:
    def test_every_discrepancy_type_has_a_row(self) -> None:
        assert set(KINDS) == set(DiscrepancyType)

    def test_a_kinds_tolerance_is_a_config_option(self) -> None:
        options = {field.name for field in attrs.fields(ReconciliationConfig)}

        assert {row.tolerance for row in KINDS.values()} - {None} <= options

    def test_only_account_level_kinds_have_no_symbol(self) -> None:
        assert {kind for kind in DiscrepancyType if kind.is_account_level} == {
            DiscrepancyType.CASH_MISMATCH,
            DiscrepancyType.EQUITY_MISMATCH,
        }
