"""What a correction is and how it is derived from a break (`_domain/correction.py`), and the policy."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation import CorrectionPolicy, ReconciliationConfig
from reconciliation._domain.breaks import break_id_for
from reconciliation._domain.compare import compare
from reconciliation._domain.correction import (
    Correction,
    CorrectionEvent,
    CorrectionStatus,
    derive_correction,
    propose_corrections,
)
from reconciliation._domain.models import (
    CORRECTABLE_TYPES,
    AssetType,
    BrokerAccount,
    BrokerPosition,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    OrderFill,
    Position,
    Snapshot,
)
from reconciliation.paper import InMemoryPortfolio

ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
RUN = uuid.UUID("00000000-0000-4000-8000-000000000001")
CONFIG = ReconciliationConfig(ACCOUNT)


def snapshot(
    local: list[Position] = (),  # type: ignore[assignment]
    broker: list[BrokerPosition] = (),  # type: ignore[assignment]
    *,
    local_cash: Decimal = Decimal(1000),
    broker_cash: Decimal = Decimal(1000),
) -> Snapshot:
    from reconciliation._domain.models import LocalAccount  # noqa: PLC0415

    return Snapshot(
        ACCOUNT,
        local,
        LocalAccount(ACCOUNT, local_cash, local_cash),
        broker,
        BrokerAccount(ACCOUNT, broker_cash, Decimal(0), broker_cash, Decimal(0)),
        NOW,
    )


def corrections_of(books: Snapshot) -> tuple[Correction, ...]:
    found = compare(books, CONFIG).discrepancies
    return propose_corrections(books, [(d, break_id_for(RUN, d.key), 1) for d in found], run_id=RUN)


def only(books: Snapshot) -> Correction:
    (correction,) = corrections_of(books)
    return correction


class TestDerivation:
    def test_a_position_the_engine_lacks_is_opened_at_the_brokers_average_cost(self) -> None:
        correction = only(snapshot(broker=[BrokerPosition("NVDA", 40, "120.00", "4800")]))

        assert correction.type is DiscrepancyType.MISSING_LOCAL
        assert (correction.quantity, correction.price, correction.avg_cost) == (
            40,
            Decimal("120.00"),
            Decimal("120.00"),
        )
        assert correction.notional == Decimal("4800.00")

    def test_a_position_the_broker_lacks_is_closed_at_the_local_average_cost(self) -> None:
        correction = only(snapshot(local=[Position("GOOG", 25, "171.30")]))

        assert correction.type is DiscrepancyType.MISSING_BROKER
        assert (correction.quantity, correction.price, correction.avg_cost) == (-25, Decimal("171.30"), None)

    def test_a_quantity_mismatch_is_the_difference_at_the_brokers_average_cost(self) -> None:
        correction = only(
            snapshot(
                local=[Position("MSFT", 50, "415")], broker=[BrokerPosition("MSFT", 60, "415.05", "24903")]
            )
        )

        assert (correction.quantity, correction.price, correction.avg_cost) == (
            10,
            Decimal("415.05"),
            Decimal("415.05"),
        )
        assert correction.notional == Decimal("4150.50")

    def test_a_short_that_crossed_zero_is_the_whole_difference(self) -> None:
        correction = only(
            snapshot(local=[Position("TSLA", 10, "200")], broker=[BrokerPosition("TSLA", -5, "210", "-1050")])
        )

        assert correction.quantity == -15

    def test_a_broker_without_an_average_cost_prices_the_fill_at_its_mark(self) -> None:
        correction = only(snapshot(broker=[BrokerPosition("BTC", "0.5", None, "30000.00", AssetType.CRYPTO)]))

        assert (correction.price, correction.avg_cost) == (Decimal(60000), None)
        assert correction.asset_type is AssetType.CRYPTO

    def test_a_mark_that_is_a_binary_fraction_prices_the_fill_rather_than_being_refused_as_a_float(self) -> None:
        correction = only(snapshot(broker=[BrokerPosition("AAPL", 1024, None, 347892350979)]))

        assert correction.price == Decimal("339738624.002929688")

    def test_a_cost_mismatch_is_the_brokers_average_cost(self) -> None:
        correction = only(
            snapshot(
                local=[Position("AMZN", 100, "185.12")],
                broker=[BrokerPosition("AMZN", 100, "185.123456", "0")],
            )
        )

        assert (correction.quantity, correction.avg_cost) == (None, Decimal("185.123456"))
        assert correction.notional == Decimal("0.345600")

    def test_a_cash_mismatch_is_the_difference_to_add(self) -> None:
        correction = only(snapshot(local_cash=Decimal("90446.95"), broker_cash=Decimal("90442.00")))

        assert (correction.cash, correction.notional) == (Decimal("-4.95"), Decimal("4.95"))

    def test_the_cash_difference_is_exact_whatever_the_magnitudes(self) -> None:
        correction = only(
            snapshot(local_cash=Decimal("1E+28"), broker_cash=Decimal("10000000000000000000000000005.01"))
        )

        assert correction.cash == Decimal("5.01")

    def test_positions_a_side_reports_twice_are_netted_as_the_comparison_nets_them(self) -> None:
        correction = only(
            snapshot(broker=[BrokerPosition("ETH", 1, 100, 100), BrokerPosition("ETH", 3, 200, 600)])
        )

        assert (correction.quantity, correction.avg_cost) == (4, Decimal(175))

    def test_equity_is_never_corrected(self) -> None:
        equity = Discrepancy(
            DiscrepancyType.EQUITY_MISMATCH, DiscrepancySeverity.WARNING, None, 1, 2, NOW, ACCOUNT
        )

        with pytest.raises(ValueError, match="equity_mismatch cannot be corrected"):
            derive_correction(
                equity, break_id=uuid.uuid4(), run_id=RUN, consecutive_runs=1, local=None, broker=None
            )

    def test_an_equity_break_among_others_gets_no_correction(self) -> None:
        books = attrs.evolve(
            snapshot(local_cash=Decimal(1000), broker_cash=Decimal(1500)),
            broker_account=BrokerAccount(ACCOUNT, Decimal(1500), Decimal(0), Decimal(9000), Decimal(0)),
        )

        assert [c.type for c in corrections_of(books)] == [DiscrepancyType.CASH_MISMATCH]

    def test_the_same_break_and_run_give_the_same_correction_id(self) -> None:
        books = snapshot(local_cash=Decimal(1), broker_cash=Decimal(5))

        assert only(books).correction_id == only(books).correction_id

    def test_a_correction_without_a_known_value_is_refused_under_any_policy(self) -> None:
        correction = only(snapshot(local=[Position("GOOG", 25, None)]))

        assert "its value is unknown" in (correction.refusal(CorrectionPolicy()) or "")
        assert "its value is unknown" in (correction.refusal(CorrectionPolicy(max_notional=10**9)) or "")

    def test_a_correction_describes_its_change(self) -> None:
        correction = only(snapshot(broker=[BrokerPosition("NVDA", 40, "120.00", "4800")]))

        assert correction.describe() == "buy 40 NVDA at 120.00, average cost 120.00"


class TestPolicy:
    def test_by_default_it_proposes_after_two_runs_for_positions_and_cash_without_limit(self) -> None:
        policy = CorrectionPolicy()

        assert (policy.mode, policy.confirm_after_runs, policy.max_notional) == ("propose", 2, None)
        assert policy.types == CORRECTABLE_TYPES
        assert DiscrepancyType.EQUITY_MISMATCH not in policy.types

    def test_correction_is_off_unless_configured(self) -> None:
        assert ReconciliationConfig(ACCOUNT).correction is None

    def test_equity_is_refused(self) -> None:
        with pytest.raises(ValueError, match="equity_mismatch cannot be corrected"):
            CorrectionPolicy(types=["cash_mismatch", "equity_mismatch"])

    def test_types_are_read_from_their_names(self) -> None:
        assert CorrectionPolicy(types=["cash_mismatch"]).types == {DiscrepancyType.CASH_MISMATCH}

    def test_an_unknown_type_is_refused_naming_the_correctable_ones(self) -> None:
        with pytest.raises(ValueError, match="unknown discrepancy type 'cash'; correctable: cash_mismatch"):
            CorrectionPolicy(types=["cash"])

    def test_no_type_at_all_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            CorrectionPolicy(types=[])

    def test_an_unknown_mode_is_refused(self) -> None:
        with pytest.raises(ValueError, match="mode"):
            CorrectionPolicy(mode="auto")  # type: ignore[arg-type]

    def test_confirming_needs_at_least_one_run(self) -> None:
        with pytest.raises(ValueError, match="confirm_after_runs must be at least 1"):
            CorrectionPolicy(confirm_after_runs=0)

    def test_a_negative_limit_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_notional must not be negative"):
            CorrectionPolicy(max_notional=-1)

    def test_a_float_limit_is_refused(self) -> None:
        with pytest.raises(TypeError, match="max_notional must be a Decimal"):
            CorrectionPolicy(max_notional=1000.5)  # type: ignore[arg-type]

    def test_a_limit_given_as_text_is_exact(self) -> None:
        assert CorrectionPolicy(max_notional="2500.00").max_notional == Decimal("2500.00")


class TestEvent:
    def test_each_step_of_a_correction_has_its_own_stable_id(self) -> None:
        correction = only(snapshot(local_cash=Decimal(1), broker_cash=Decimal(5)))

        def event(status: CorrectionStatus) -> CorrectionEvent:
            return CorrectionEvent(status, correction, "apply", NOW, "test", 2, DiscrepancySeverity.WARNING)

        assert event(CorrectionStatus.APPLIED).event_id == event(CorrectionStatus.APPLIED).event_id
        assert event(CorrectionStatus.APPLIED).event_id != event(CorrectionStatus.PROPOSED).event_id


# The property: any local book (an InMemoryPortfolio, kept by the booking rules) and any
# broker report. Each symbol has one asset type, as the in-memory book keys by symbol.
ASSET_TYPE_OF = {
    "AAPL": AssetType.STOCK,
    "MSFT": AssetType.STOCK,
    "SPY C450": AssetType.OPTION,
    "ES": AssetType.FUTURE,
    "BTC": AssetType.CRYPTO,
}
symbols = st.sampled_from(sorted(ASSET_TYPE_OF))
held_quantities = st.one_of(
    st.integers(-50, 50).filter(bool).map(Decimal),
    st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False).filter(
        bool
    ),
)
reported_quantities = st.just(Decimal(0)) | held_quantities
known_costs = st.one_of(
    st.sampled_from([Decimal(100), Decimal("100.00"), Decimal("100.01")]),
    st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
)
money = st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False, allow_infinity=False)
holdings = st.dictionaries(symbols, st.tuples(held_quantities, known_costs), max_size=5)
reported = st.lists(
    st.builds(
        lambda symbol, quantity, cost, value: BrokerPosition(
            symbol, quantity, cost, value, ASSET_TYPE_OF[symbol]
        ),
        symbols,
        reported_quantities,
        st.none() | known_costs,
        money,
    ),
    max_size=6,
)


def portfolio_of(held: dict[str, tuple[Decimal, Decimal]], cash: Decimal) -> InMemoryPortfolio:
    book = InMemoryPortfolio(ACCOUNT, cash)
    for n, (symbol, (quantity, cost)) in enumerate(sorted(held.items())):
        book.apply_fill(
            OrderFill(
                f"O{n}", f"F{n}", ACCOUNT, symbol, quantity, cost, NOW, asset_type=ASSET_TYPE_OF[symbol]
            )
        )
    book.adjust_cash(cash - book.cash, "the test's opening cash")
    return book


def books_of(book: InMemoryPortfolio, broker: list[BrokerPosition], broker_cash: Decimal) -> Snapshot:
    return Snapshot(
        ACCOUNT,
        book.get_positions(ACCOUNT),
        book.get_account(ACCOUNT),
        broker,
        BrokerAccount(ACCOUNT, broker_cash, Decimal(0), broker_cash, Decimal(0)),
        NOW,
    )


@st.composite
def mirrored(draw: st.DrawFn, held: dict[str, tuple[Decimal, Decimal]]) -> list[BrokerPosition]:
    """Some of the held positions as the broker reports them: same quantity, perhaps another cost."""
    chosen = draw(st.lists(st.sampled_from(sorted(held)), unique=True)) if held else []
    return [
        BrokerPosition(
            symbol, held[symbol][0], draw(st.none() | known_costs), draw(money), ASSET_TYPE_OF[symbol]
        )
        for symbol in chosen
    ]


@given(holdings, money, st.data(), money)
def test_applying_every_proposed_correction_leaves_no_position_or_cash_break(
    held: dict[str, tuple[Decimal, Decimal]], cash: Decimal, data: st.DataObject, broker_cash: Decimal
) -> None:
    broker = data.draw(mirrored(held)) + data.draw(reported)
    book = portfolio_of(held, cash)

    for correction in corrections_of(books_of(book, broker, broker_cash)):
        book.apply_correction(correction)

    after = compare(books_of(book, broker, broker_cash), CONFIG).discrepancies
    assert [d for d in after if d.type in CORRECTABLE_TYPES] == []
