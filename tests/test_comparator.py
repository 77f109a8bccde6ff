"""The comparator: how each way the two books can differ is classified."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest

from reconciliation._domain.compare import (
    CHUNK_SIZE,
    Comparison,
    compare,
    compare_accounts,
    compare_positions,
)
from reconciliation._domain.models import (
    AssetType,
    BrokerAccount,
    BrokerPosition,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    LocalAccount,
    NettedSymbol,
    Position,
    ReconciliationConfig,
    Snapshot,
)

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
CONFIG = ReconciliationConfig(account_id=ACCOUNT)


def local(symbol: str, quantity: Decimal | int, avg_cost: Decimal | int = Decimal(100)) -> Position:
    return Position(symbol, quantity, avg_cost)


def broker(symbol: str, quantity: Decimal | int, avg_cost: Decimal | int = Decimal(100)) -> BrokerPosition:
    return BrokerPosition(symbol, quantity, avg_cost, market_value=Decimal(quantity) * Decimal(avg_cost))


def positions(
    local_positions: list[Position],
    broker_positions: list[BrokerPosition],
    config: ReconciliationConfig = CONFIG,
) -> Comparison:
    return compare_positions(
        local_positions, broker_positions, account_id=ACCOUNT, timestamp=NOW, config=config
    )


def accounts(
    local_cash: str,
    broker_cash: str,
    *,
    local_equity: str = "100000",
    broker_equity: str = "100000",
    config: ReconciliationConfig = CONFIG,
) -> tuple[Discrepancy, ...]:
    return compare_accounts(
        LocalAccount(ACCOUNT, Decimal(local_cash), Decimal(local_equity)),
        BrokerAccount(
            ACCOUNT,
            cash=Decimal(broker_cash),
            buying_power=Decimal(0),
            total_equity=Decimal(broker_equity),
            margin_used=Decimal(0),
        ),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=config,
    )


def kinds(found: Comparison | tuple[Discrepancy, ...]) -> list[tuple[DiscrepancyType, str | None]]:
    discrepancies = found.discrepancies if isinstance(found, Comparison) else found
    return [(d.type, d.symbol) for d in discrepancies]


def only(comparison: Comparison) -> Discrepancy:
    (discrepancy,) = comparison.discrepancies
    return discrepancy


class TestPositionComparison:
    def test_no_discrepancies_when_matching(self) -> None:
        result = positions([local("AAPL", 100), local("MSFT", 50)], [broker("MSFT", 50), broker("AAPL", 100)])

        assert result.discrepancies == ()
        assert result.positions_checked == 2

    def test_missing_local_detected(self) -> None:
        found = only(positions([], [broker("AAPL", 150)]))

        assert found == Discrepancy(
            type=DiscrepancyType.MISSING_LOCAL,
            severity=DiscrepancySeverity.CRITICAL,
            symbol="AAPL",
            local_value=None,
            broker_value=Decimal(150),
            timestamp=NOW,
            account_id=ACCOUNT,
        )

    def test_missing_broker_detected(self) -> None:
        found = only(positions([local("AAPL", 100)], []))

        assert (found.type, found.symbol, found.local_value, found.broker_value) == (
            DiscrepancyType.MISSING_BROKER,
            "AAPL",
            Decimal(100),
            None,
        )
        assert found.severity is DiscrepancySeverity.CRITICAL

    def test_quantity_mismatch_detected(self) -> None:
        found = only(positions([local("AAPL", 100)], [broker("AAPL", 150)]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            Decimal(100),
            Decimal(150),
        )
        assert found.severity is DiscrepancySeverity.CRITICAL

    def test_cost_mismatch_informational(self) -> None:
        found = only(
            positions([local("AAPL", 100, Decimal("150.25"))], [broker("AAPL", 100, Decimal("150.26"))])
        )

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.COST_MISMATCH,
            Decimal("150.25"),
            Decimal("150.26"),
        )
        assert found.severity is DiscrepancySeverity.INFO

    def test_quantity_mismatch_hides_cost_mismatch(self) -> None:
        result = positions([local("AAPL", 100, 1)], [broker("AAPL", 150, 2)])

        assert kinds(result) == [(DiscrepancyType.QUANTITY_MISMATCH, "AAPL")]

    def test_cost_compared_exactly(self) -> None:
        result = positions(
            [local("AAPL", 100, Decimal("150.250000"))], [broker("AAPL", 100, Decimal("150.2500000001"))]
        )

        assert kinds(result) == [(DiscrepancyType.COST_MISMATCH, "AAPL")]

    def test_int_quantity_equals_same_decimal_with_trailing_zeros(self) -> None:
        result = positions([local("AAPL", 100)], [broker("AAPL", Decimal("100.000"))])

        assert result.discrepancies == ()

    def test_discrepancies_sorted_by_symbol(self) -> None:
        result = positions(
            [local("MSFT", 1), local("AAPL", 5), local("TSLA", 3, 7)],
            [broker("ZM", 2), broker("AAPL", 6), broker("TSLA", 3, 8)],
        )

        assert [d.symbol for d in result.discrepancies] == ["AAPL", "MSFT", "TSLA", "ZM"]

    def test_positions_checked_counts_distinct_symbols_on_either_side(self) -> None:
        result = positions([local("AAPL", 1), local("MSFT", 0)], [broker("AAPL", 1), broker("ZM", 2)])

        assert result.positions_checked == 3


class TestFlatPositions:
    def test_local_flat_and_broker_absent_is_clean(self) -> None:
        result = positions([local("AAPL", 0)], [])

        assert result.discrepancies == ()
        assert result.positions_checked == 1

    def test_broker_flat_and_local_absent_is_clean(self) -> None:
        assert positions([], [broker("AAPL", 0)]).discrepancies == ()

    def test_flat_on_both_sides_with_different_costs_is_clean(self) -> None:
        assert positions([local("AAPL", 0, 10)], [broker("AAPL", 0, 12)]).discrepancies == ()

    def test_local_flat_broker_holding_is_missing_local(self) -> None:
        found = only(positions([local("AAPL", 0)], [broker("AAPL", 40)]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.MISSING_LOCAL,
            None,
            Decimal(40),
        )

    def test_broker_flat_local_holding_is_missing_broker(self) -> None:
        found = only(positions([local("AAPL", 40)], [broker("AAPL", 0)]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.MISSING_BROKER,
            Decimal(40),
            None,
        )


class TestSignedAndFractionalQuantities:
    def test_matching_short_positions_are_clean(self) -> None:
        assert positions([local("TSLA", -25)], [broker("TSLA", -25)]).discrepancies == ()

    def test_short_size_mismatch_detected(self) -> None:
        found = only(positions([local("TSLA", -25)], [broker("TSLA", -30)]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            Decimal(-25),
            Decimal(-30),
        )

    def test_short_crossing_zero_is_a_quantity_mismatch(self) -> None:
        found = only(positions([local("TSLA", -10)], [broker("TSLA", 10)]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            Decimal(-10),
            Decimal(10),
        )

    def test_missing_short_keeps_its_sign(self) -> None:
        found = only(positions([], [broker("TSLA", -7)]))

        assert found.broker_value == Decimal(-7)

    def test_fractional_quantities_compared_exactly(self) -> None:
        found = only(positions([local("BTC", Decimal("0.12345678"))], [broker("BTC", Decimal("0.12345679"))]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            Decimal("0.12345678"),
            Decimal("0.12345679"),
        )

    def test_matching_fractional_quantities_are_clean(self) -> None:
        assert (
            positions([local("AAPL", Decimal("3.5"))], [broker("AAPL", Decimal("3.50"))]).discrepancies == ()
        )


class TestDuplicateSymbols:
    def test_local_duplicates_netted_and_recorded(self) -> None:
        result = positions([local("AAPL", 60), local("AAPL", 40)], [broker("AAPL", 100)])

        assert result.discrepancies == ()
        assert result.netted == (NettedSymbol(side="local", symbol="AAPL", entries=2),)

    def test_broker_duplicates_netted_and_recorded(self) -> None:
        result = positions([local("AAPL", 100)], [broker("AAPL", 60), broker("AAPL", 30), broker("AAPL", 10)])

        assert result.discrepancies == ()
        assert result.netted == (NettedSymbol(side="broker", symbol="AAPL", entries=3),)

    def test_second_entry_does_not_overwrite_the_first(self) -> None:
        found = only(positions([local("AAPL", 100)], [broker("AAPL", 100), broker("AAPL", 5)]))

        assert (found.type, found.broker_value) == (DiscrepancyType.QUANTITY_MISMATCH, Decimal(105))

    def test_netted_cost_weighted_by_quantity(self) -> None:
        found = only(positions([local("AAPL", 30, 10), local("AAPL", 10, 20)], [broker("AAPL", 40, 1)]))

        assert found.local_value == Decimal("12.5")

    def test_netted_cost_weighted_by_absolute_quantity_for_opposite_legs(self) -> None:
        found = only(positions([local("AAPL", 30, 10), local("AAPL", -10, 20)], [broker("AAPL", 20, 1)]))

        assert found.type is DiscrepancyType.COST_MISMATCH
        assert found.local_value == Decimal("12.5")

    def test_a_netted_cost_finer_than_a_position_may_carry_is_rounded_not_refused(self) -> None:
        legs = [(1, Decimal("0.0001")), (Decimal("9E+28"), 0)]

        result = positions([local("AAPL", q, c) for q, c in legs], [broker("AAPL", q, c) for q, c in legs])

        assert result.discrepancies == ()
        assert len(result.netted) == 2

    def test_a_netted_cost_that_is_a_binary_fraction_is_compared_rather_than_refused_as_a_float(self) -> None:
        found = only(positions([local("AAPL", 1, 339738627), local("AAPL", 1023, 339738624)], [broker("AAPL", 1024, 1)]))

        assert found.local_value == Decimal("339738624.002929688")

    def test_hedge_legs_netting_to_flat_are_not_a_position(self) -> None:
        result = positions([], [broker("AAPL", 50, 10), broker("AAPL", -50, 11)])

        assert result.discrepancies == ()
        assert result.netted == (NettedSymbol(side="broker", symbol="AAPL", entries=2),)

    def test_nettings_listed_local_first_then_by_symbol(self) -> None:
        result = positions(
            [local("MSFT", 1), local("MSFT", 1), local("AAPL", 1), local("AAPL", 1)],
            [broker("ZM", 1), broker("ZM", 1), broker("AAPL", 2)],
        )

        assert [(n.side, n.symbol) for n in result.netted] == [
            ("local", "AAPL"),
            ("local", "MSFT"),
            ("broker", "ZM"),
        ]

    def test_duplicates_count_once_in_positions_checked(self) -> None:
        assert positions([local("AAPL", 1), local("AAPL", 1)], [broker("AAPL", 2)]).positions_checked == 1

    def test_no_nettings_recorded_without_duplicates(self) -> None:
        assert positions([local("AAPL", 1)], [broker("AAPL", 1)]).netted == ()


class TestAssetTypes:
    def test_a_stock_and_an_option_on_one_symbol_are_compared_apart(self) -> None:
        held = [Position("AAPL", 100, 187), Position("AAPL", 2, "3.15", AssetType.OPTION)]
        reported = [
            BrokerPosition("AAPL", 100, 187, 19000),
            BrokerPosition("AAPL", 3, "3.15", 1050, AssetType.OPTION),
        ]

        (found,) = positions(held, reported).discrepancies

        assert (found.type, found.symbol, found.asset_type) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            "AAPL",
            AssetType.OPTION,
        )
        assert (found.local_value, found.broker_value) == (2, 3)

    def test_a_stock_and_an_option_are_never_netted_together(self) -> None:
        held = [Position("AAPL", 100, 187), Position("AAPL", 2, "3.15", AssetType.OPTION)]

        found = positions(held, [BrokerPosition("AAPL", 102, 187, 0)]).discrepancies

        assert [(d.type, d.asset_type, d.local_value, d.broker_value) for d in found] == [
            (DiscrepancyType.MISSING_BROKER, AssetType.OPTION, 2, None),
            (DiscrepancyType.QUANTITY_MISMATCH, AssetType.STOCK, 100, 102),
        ]

    def test_a_position_booked_as_another_asset_type_is_missing_on_each_side(self) -> None:
        found = positions(
            [Position("ES", -1, 5975, AssetType.FUTURE)],
            [BrokerPosition("ES", -1, 5975, 0, AssetType.OPTION)],
        ).discrepancies

        assert [(d.type, d.asset_type) for d in found] == [
            (DiscrepancyType.MISSING_BROKER, AssetType.FUTURE),
            (DiscrepancyType.MISSING_LOCAL, AssetType.OPTION),
        ]

    def test_positions_checked_counts_each_asset_type_of_a_symbol(self) -> None:
        held = [Position("AAPL", 100, 187), Position("AAPL", 2, 3, AssetType.OPTION)]

        assert positions(held, [BrokerPosition("AAPL", 100, 187, 0)]).positions_checked == 2

    def test_duplicates_of_one_asset_type_are_netted_and_listed_with_it(self) -> None:
        reported = [
            BrokerPosition("BTC/USDT:USDT", "0.5", 97000, 0, AssetType.SWAP),
            BrokerPosition("BTC/USDT:USDT", "-0.2", 97000, 0, AssetType.SWAP),
        ]

        found = positions([Position("BTC/USDT:USDT", "0.3", 97000, AssetType.SWAP)], reported)

        assert found.discrepancies == ()
        assert found.netted == (NettedSymbol("broker", "BTC/USDT:USDT", 2, AssetType.SWAP),)

    def test_account_level_discrepancies_have_no_asset_type(self) -> None:
        assert {d.asset_type for d in accounts("0", "10", local_equity="0")} == {None}


class TestUnknownCost:
    @pytest.mark.parametrize(
        ("local_cost", "broker_cost"),
        [(None, 100), (100, None), (None, None)],
        ids=["local", "broker", "both"],
    )
    def test_unknown_cost_is_not_compared(self, local_cost: int | None, broker_cost: int | None) -> None:
        held = [Position("BTC", "0.5", local_cost, AssetType.CRYPTO)]
        reported = [BrokerPosition("BTC", "0.5", broker_cost, 0, AssetType.CRYPTO)]

        assert positions(held, reported).discrepancies == ()

    def test_quantities_are_compared_when_the_cost_is_unknown(self) -> None:
        found = only(positions([Position("BTC", "0.5", None)], [BrokerPosition("BTC", "0.4", None, 0)]))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.QUANTITY_MISMATCH,
            Decimal("0.5"),
            Decimal("0.4"),
        )

    def test_netting_an_entry_of_unknown_cost_gives_an_unknown_cost(self) -> None:
        held = [Position("AAPL", 50, 100), Position("AAPL", 50, None)]

        assert positions(held, [broker("AAPL", 100, 999)]).discrepancies == ()


class TestCostTolerance:
    def test_cost_within_the_tolerance_not_flagged(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=Decimal("0.01"))

        assert (
            positions(
                [local("AAPL", 10, Decimal("100.009"))], [broker("AAPL", 10, 100)], config
            ).discrepancies
            == ()
        )

    def test_cost_difference_equal_to_the_tolerance_not_flagged(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=Decimal("0.01"))

        assert (
            positions([local("AAPL", 10, Decimal("100.01"))], [broker("AAPL", 10, 100)], config).discrepancies
            == ()
        )

    def test_cost_just_beyond_the_tolerance_flagged(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=Decimal("0.01"))

        found = only(positions([local("AAPL", 10, Decimal("100.0101"))], [broker("AAPL", 10, 100)], config))

        assert (found.type, found.local_value, found.broker_value) == (
            DiscrepancyType.COST_MISMATCH,
            Decimal("100.0101"),
            100,
        )

    def test_cost_tolerance_is_a_share_of_the_brokers_cost(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=Decimal(1))

        assert positions(
            [local("X", 1, Decimal("0.01011"))], [broker("X", 1, Decimal("0.01"))], config
        ).discrepancies

    def test_cost_tolerance_of_a_negative_cost_uses_its_magnitude(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cost_tolerance_pct=Decimal(1))

        assert (
            positions(
                [local("CAL", 1, Decimal("-2.02"))], [broker("CAL", 1, Decimal(-2))], config
            ).discrepancies
            == ()
        )


def balances_by_currency(
    held: dict[str, str] | None,
    reported: dict[str, str] | None,
    *,
    local_cash: str = "0",
    broker_cash: str = "0",
    config: ReconciliationConfig = CONFIG,
) -> tuple[Discrepancy, ...]:
    return compare_accounts(
        LocalAccount(ACCOUNT, local_cash, 0, cash_by_currency=held),
        BrokerAccount(ACCOUNT, broker_cash, 0, 0, 0, cash_by_currency=reported),
        account_id=ACCOUNT,
        timestamp=NOW,
        config=config,
    )


class TestCashByCurrency:
    def test_each_currency_compared_in_its_own_units(self) -> None:
        found = balances_by_currency(
            {"USD": "78935.08", "EUR": "12000.00"}, {"USD": "78935.08", "EUR": "11990.00"}
        )

        (eur,) = found
        assert (eur.type, eur.currency, eur.local_value, eur.broker_value) == (
            DiscrepancyType.CASH_MISMATCH,
            "EUR",
            Decimal("12000.00"),
            Decimal("11990.00"),
        )

    def test_fx_revaluation_of_the_single_cash_figure_is_not_a_break(self) -> None:
        found = balances_by_currency(
            {"USD": "78935.08", "EUR": "12000.00"},
            {"USD": "78935.08", "EUR": "12000.00"},
            local_cash="91945.48",
            broker_cash="92021.08",
        )

        assert found == ()

    def test_a_currency_one_side_does_not_list_holds_zero_there(self) -> None:
        (bnb,) = balances_by_currency({"USDT": "100"}, {"USDT": "100", "BNB": "2"})

        assert (bnb.currency, bnb.local_value, bnb.broker_value) == ("BNB", 0, 2)

    def test_dust_in_an_unlisted_currency_within_a_tolerance_set_for_the_account_is_not_a_break(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cash_tolerance="0.05")

        assert balances_by_currency({"USDT": "100"}, {"USDT": "100", "BNB": "0.01"}, config=config) == ()

    def test_the_default_tolerance_is_in_usd_so_another_currency_is_compared_exactly(self) -> None:
        (bnb,) = balances_by_currency({"USDT": "100.50", "BNB": "0"}, {"USDT": "100", "BNB": "0.01"})

        assert (bnb.currency, bnb.local_value, bnb.broker_value) == ("BNB", 0, Decimal("0.01"))

    def test_a_currencys_own_tolerance_replaces_cash_tolerance(self) -> None:
        config = ReconciliationConfig(ACCOUNT, cash_tolerance_by_currency={"JPY": 150})

        found = balances_by_currency(
            {"JPY": "10000", "EUR": "10"}, {"JPY": "10150", "EUR": "12"}, config=config
        )

        assert [d.currency for d in found] == ["EUR"]

    def test_breaks_listed_by_currency(self) -> None:
        found = balances_by_currency(
            {"USD": "0", "EUR": "0", "CHF": "0"}, {"USD": "5", "EUR": "5", "CHF": "5"}
        )

        assert [d.currency for d in found] == ["CHF", "EUR", "USD"]

    @pytest.mark.parametrize(("held", "reported"), [({"EUR": "5"}, None), (None, {"EUR": "5"})])
    def test_single_cash_compared_when_only_one_side_gives_currencies(
        self, held: dict[str, str] | None, reported: dict[str, str] | None
    ) -> None:
        (cash,) = balances_by_currency(held, reported, local_cash="100", broker_cash="90")

        assert (cash.currency, cash.local_value, cash.broker_value) == (None, 100, 90)


class TestAccountComparison:
    def test_cash_within_tolerance_ok(self) -> None:
        assert accounts("10000.00", "10000.99") == ()

    def test_cash_outside_tolerance_flagged(self) -> None:
        (found,) = accounts("10000.00", "10001.01")

        assert found == Discrepancy(
            type=DiscrepancyType.CASH_MISMATCH,
            severity=DiscrepancySeverity.WARNING,
            symbol=None,
            local_value=Decimal("10000.00"),
            broker_value=Decimal("10001.01"),
            timestamp=NOW,
            account_id=ACCOUNT,
        )

    def test_cash_difference_equal_to_tolerance_not_flagged(self) -> None:
        assert accounts("10000.00", "9999.00") == ()

    def test_cash_one_cent_beyond_tolerance_flagged(self) -> None:
        assert kinds(accounts("10000.00", "9998.99")) == [(DiscrepancyType.CASH_MISMATCH, None)]

    def test_equity_percentage_tolerance(self) -> None:
        within = accounts("0", "0", local_equity="100099", broker_equity="100000")
        beyond = accounts("0", "0", local_equity="100101", broker_equity="100000")

        assert within == ()
        assert kinds(beyond) == [(DiscrepancyType.EQUITY_MISMATCH, None)]
        assert (beyond[0].local_value, beyond[0].broker_value) == (Decimal(100101), Decimal(100000))
        assert beyond[0].severity is DiscrepancySeverity.WARNING

    def test_equity_difference_equal_to_tolerance_not_flagged(self) -> None:
        assert accounts("0", "0", local_equity="100100", broker_equity="100000") == ()

    def test_equity_tolerance_is_a_share_of_the_brokers_equity(self) -> None:
        assert accounts("0", "0", local_equity="100000", broker_equity="100100") == ()
        assert kinds(accounts("0", "0", local_equity="100100", broker_equity="100000.01")) == []
        assert kinds(accounts("0", "0", local_equity="100100.02", broker_equity="100000")) == [
            (DiscrepancyType.EQUITY_MISMATCH, None)
        ]

    def test_negative_broker_equity_uses_its_magnitude(self) -> None:
        assert accounts("0", "0", local_equity="-1001", broker_equity="-1000") == ()
        assert kinds(accounts("0", "0", local_equity="-1002", broker_equity="-1000")) == [
            (DiscrepancyType.EQUITY_MISMATCH, None)
        ]

    def test_zero_equity_tolerance_flags_any_difference(self) -> None:
        strict = ReconciliationConfig(ACCOUNT, equity_tolerance_pct=0, cash_tolerance=0)

        assert kinds(
            accounts("5.00", "5.01", local_equity="1000000", broker_equity="1000000.01", config=strict)
        ) == [(DiscrepancyType.CASH_MISMATCH, None), (DiscrepancyType.EQUITY_MISMATCH, None)]

    def test_huge_cash_differing_by_one_cent_beyond_tolerance_flagged(self) -> None:
        huge = "123456789012345678901234567.00"
        just_beyond = "123456789012345678901234568.01"

        assert kinds(accounts(huge, just_beyond)) == [(DiscrepancyType.CASH_MISMATCH, None)]

    def test_huge_cash_differing_by_exactly_the_tolerance_not_flagged(self) -> None:
        assert (
            accounts("987654321098765432109876543.43", "987654321098765432109876544.43") == ()
        )

    def test_huge_equity_compared_to_the_cent(self) -> None:
        broker_equity = "123456789012345678901234567.45"
        at_tolerance = "123580245801358024580135802.01745"
        one_cent_more = "123580245801358024580135802.02745"

        assert accounts("0", "0", local_equity=at_tolerance, broker_equity=broker_equity) == ()
        assert kinds(accounts("0", "0", local_equity=one_cent_more, broker_equity=broker_equity)) == [
            (DiscrepancyType.EQUITY_MISMATCH, None)
        ]


class TestSeverity:
    def test_override_changes_severity(self) -> None:
        config = ReconciliationConfig(
            ACCOUNT,
            severity_overrides={
                DiscrepancyType.COST_MISMATCH: DiscrepancySeverity.CRITICAL,
                "cash_mismatch": "info",
            },
        )

        cost = only(positions([local("AAPL", 1, 1)], [broker("AAPL", 1, 2)], config=config))
        (cash,) = accounts("0", "10", config=config)

        assert cost.severity is DiscrepancySeverity.CRITICAL
        assert cash.severity is DiscrepancySeverity.INFO

    def test_types_without_override_keep_the_default(self) -> None:
        config = ReconciliationConfig(
            ACCOUNT, severity_overrides={DiscrepancyType.COST_MISMATCH: DiscrepancySeverity.CRITICAL}
        )

        missing = only(positions([], [broker("AAPL", 1)], config=config))
        (cash,) = accounts("0", "10", config=config)

        assert missing.severity is DiscrepancySeverity.CRITICAL
        assert cash.severity is DiscrepancySeverity.WARNING


class TestSnapshot:
    @pytest.fixture
    def snapshot(self) -> Snapshot:
        return Snapshot(
            account_id=ACCOUNT,
            local_positions=(local("AAPL", 100), Position("ES", 2, 5000, AssetType.FUTURE)),
            local_account=LocalAccount(ACCOUNT, cash=Decimal("500.00"), total_equity=Decimal(10000)),
            broker_positions=(
                broker("AAPL", 90),
                BrokerPosition("ES", 2, 5000, market_value=500000, asset_type=AssetType.FUTURE),
            ),
            broker_account=BrokerAccount(
                ACCOUNT,
                cash=Decimal("300.00"),
                buying_power=Decimal(0),
                total_equity=Decimal(20000),
                margin_used=Decimal(0),
            ),
            taken_at=NOW,
        )

    def test_positions_first_then_cash_then_equity(self, snapshot: Snapshot) -> None:
        assert kinds(compare(snapshot, CONFIG)) == [
            (DiscrepancyType.QUANTITY_MISMATCH, "AAPL"),
            (DiscrepancyType.CASH_MISMATCH, None),
            (DiscrepancyType.EQUITY_MISMATCH, None),
        ]

    def test_every_discrepancy_stamped_with_the_snapshot(self, snapshot: Snapshot) -> None:
        later = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        result = compare(attrs.evolve(snapshot, taken_at=later, account_id="ACC-9"), CONFIG)

        assert {(d.timestamp, d.account_id) for d in result.discrepancies} == {(later, "ACC-9")}

    def test_positions_checked_from_the_position_join(self, snapshot: Snapshot) -> None:
        assert compare(snapshot, CONFIG).positions_checked == 2

    def test_clean_snapshot_compares_clean(self, snapshot: Snapshot) -> None:
        clean = attrs.evolve(
            snapshot,
            broker_positions=(
                broker("AAPL", 100),
                BrokerPosition("ES", 2, 5000, market_value=500000, asset_type=AssetType.FUTURE),
            ),
            broker_account=BrokerAccount(ACCOUNT, 500, 0, 10000, 0),
        )

        assert compare(clean, CONFIG) == Comparison(discrepancies=(), positions_checked=2, netted=())


class TestPausing:
    """`compare_positions(..., pause=...)` works in chunks of `CHUNK_SIZE` entries."""

    @pytest.fixture
    def books(self) -> tuple[list[Position], list[BrokerPosition]]:
        """A book of 2.5 chunks with every kind of break, nettings on both sides and broker-only symbols."""
        size = CHUNK_SIZE * 5 // 2
        local_book = [local(f"S{i:05d}", i % 7 + 1, 10 + i % 3) for i in range(size)]
        broker_book = [broker(f"S{i:05d}", i % 7 + 1, 10 + i % 3) for i in range(size)]
        for i in range(0, size, 97):
            broker_book[i] = broker(f"S{i:05d}", i % 7 + 2, 10 + i % 3)  # quantity_mismatch
        for i in range(13, size, 89):
            broker_book[i] = broker(f"S{i:05d}", i % 7 + 1, 99)  # cost_mismatch
        for i in range(41, size, 83):
            broker_book[i] = broker(f"S{i:05d}", 0)  # missing_broker (flat at the broker)
        broker_book += [broker(f"B{i:05d}", i + 1) for i in range(CHUNK_SIZE + 3)]  # missing_local
        local_book += [local("S00001", 1), local("S00001", -1)]  # netted local
        broker_book += [broker("S00002", 1, 10), broker("S00002", 2, 11)]  # netted broker
        return local_book, broker_book

    def test_pausing_finds_exactly_what_one_pass_finds(
        self, books: tuple[list[Position], list[BrokerPosition]]
    ) -> None:
        local_book, broker_book = books
        one_pass = compare_positions(
            local_book, broker_book, account_id=ACCOUNT, timestamp=NOW, config=CONFIG
        )

        paused = compare_positions(
            local_book, broker_book, account_id=ACCOUNT, timestamp=NOW, config=CONFIG, pause=lambda: None
        )

        assert {d.type for d in one_pass.discrepancies} == set(DiscrepancyType) - {
            DiscrepancyType.CASH_MISMATCH,
            DiscrepancyType.EQUITY_MISMATCH,
        }
        assert {n.side for n in one_pass.netted} == {"local", "broker"}
        assert paused == one_pass

    def test_pause_called_at_least_once_per_chunk_of_a_book_larger_than_a_chunk(
        self, books: tuple[list[Position], list[BrokerPosition]]
    ) -> None:
        local_book, broker_book = books
        calls = 0

        def pause() -> None:
            nonlocal calls
            calls += 1

        compare_positions(
            local_book, broker_book, account_id=ACCOUNT, timestamp=NOW, config=CONFIG, pause=pause
        )

        assert calls >= len(local_book) // CHUNK_SIZE


class TestBuiltFromCheckedValues:
    """Position discrepancies after the first are built without validating again what was checked."""

    def test_every_position_discrepancy_equals_the_one_validation_builds(self) -> None:
        local_book = [local(f"S{i:03d}", i + 1, 10) for i in range(50)]
        broker_book = [broker(f"S{i:03d}", i + 2, 10) for i in range(50)]

        found = compare_positions(local_book, broker_book, account_id=ACCOUNT, timestamp=NOW, config=CONFIG)

        assert found.discrepancies == tuple(
            Discrepancy(
                type=DiscrepancyType.QUANTITY_MISMATCH,
                severity=CONFIG.severity_of(DiscrepancyType.QUANTITY_MISMATCH),
                symbol=f"S{i:03d}",
                local_value=Decimal(i + 1),
                broker_value=Decimal(i + 2),
                timestamp=NOW,
                account_id=ACCOUNT,
            )
            for i in range(50)
        )
        assert len({hash(d) for d in found.discrepancies}) == 50

    def test_a_timestamp_in_another_zone_is_still_converted_to_utc(self) -> None:
        paris = NOW.astimezone(dt.timezone(dt.timedelta(hours=1)))

        found = compare_positions(
            [local("A", 1), local("B", 1)], [], account_id=ACCOUNT, timestamp=paris, config=CONFIG
        )

        assert [d.timestamp.tzinfo for d in found.discrepancies] == [dt.UTC, dt.UTC]

    def test_a_naive_timestamp_is_still_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            compare_positions(
                [local("A", 1), local("B", 1)], [], account_id=ACCOUNT, timestamp=NOW.replace(tzinfo=None), config=CONFIG
            )
