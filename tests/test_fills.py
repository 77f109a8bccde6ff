"""What explains a position break (`_domain/fills.py`): the fills behind it, matched and named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from reconciliation import OrderFill
from reconciliation._domain.fills import MATCH_WINDOW, Fill, explain, fill_of

START = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


def fill(fill_id: str, quantity: int | str, price: str = "100", *, seconds: int = 0, **kwargs: object) -> Fill:
    return Fill(fill_id, f"O-{fill_id}", "AAPL", quantity, price, START + dt.timedelta(seconds=seconds), **kwargs)  # type: ignore[arg-type]


def test_a_broker_fill_the_engine_never_booked_explains_the_gap() -> None:
    common = fill("E-1", 100)
    missed = fill("E-2", 10, "412.30", seconds=62)

    found = explain(Decimal(10), [common], [common, missed])

    assert (found.verdict, found.missing_locally, found.missing_at_broker) == ("explained", (missed,), ())
    assert found.summary() == "explained: broker fill E-2 BUY 10 @ 412.30 10:01:02 not booked"


def test_an_engine_fill_the_broker_does_not_have_explains_a_negative_gap() -> None:
    phantom = fill("L-9", 5)

    found = explain(Decimal(-5), [phantom], [])

    assert (found.verdict, found.missing_at_broker) == ("explained", (phantom,))


def test_fills_are_matched_by_the_venues_execution_id_first() -> None:
    engine = fill("ENG-1", 10, venue_fill_id="E-1")

    found = explain(Decimal(0), [engine], [fill("E-1", 10, seconds=3600)])

    assert (found.verdict, found.missing_locally, found.missing_at_broker) == ("unexplained", (), ())


def test_fills_without_a_shared_id_match_by_side_quantity_and_price_within_the_window() -> None:
    found = explain(Decimal(0), [fill("ENG-1", 10, seconds=30)], [fill("E-1", 10)])

    assert found.verdict == "unexplained"


def test_fills_further_apart_than_the_window_are_two_fills() -> None:
    late = int(MATCH_WINDOW.total_seconds()) + 1

    found = explain(Decimal(0), [fill("ENG-1", 10, seconds=late)], [fill("E-1", 10)])

    assert (len(found.missing_locally), len(found.missing_at_broker), found.verdict) == (1, 1, "explained")


def test_a_matched_fill_booked_with_another_quantity_is_named_with_both() -> None:
    found = explain(Decimal(2), [fill("E-1", 8)], [fill("E-1", 10)])

    (pair,) = found.differing
    assert (found.verdict, pair.local.quantity, pair.broker.quantity) == ("explained", 8, 10)


def test_fills_that_account_for_part_of_the_gap_partly_explain_it() -> None:
    found = explain(Decimal(15), [], [fill("E-2", 10)])

    assert (found.verdict, found.explained) == ("partly_explained", 10)


def test_a_break_without_fills_on_either_side_is_unexplained_not_an_error() -> None:
    assert explain(Decimal(7), [], []).verdict == "unexplained"


def test_a_fill_reported_twice_counts_once_and_says_so() -> None:
    missed = fill("E-2", 10)

    found = explain(Decimal(10), [], [missed, missed])

    assert (found.verdict, found.missing_locally) == ("explained", (missed,))
    assert found.note == "1 fills reported twice were taken once"


def test_an_engines_order_fill_is_read_as_a_fill() -> None:
    order_fill = OrderFill("O-1", "F-1", "ACC-1", "AAPL", 10, "100", START, commission="1.00")

    assert fill_of(order_fill) == Fill("F-1", "O-1", "AAPL", 10, "100", START, fee=Decimal("1.00"))


quantities = st.integers(min_value=-500, max_value=500).filter(bool)
prices = st.decimals(min_value=1, max_value=1000, places=2)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Fill], list[Fill], list[Fill], list[Fill]]:
    """(common, missing locally, missing at the broker, the engine's copies of the common ones)."""
    count = draw(st.integers(min_value=0, max_value=6))
    common = [
        fill(f"C-{i}", draw(quantities), str(draw(prices)), seconds=i * 600) for i in range(count)
    ]
    extra_broker = [
        fill(f"B-{i}", draw(quantities), str(draw(prices)), seconds=draw(st.integers(0, 7200)))
        for i in range(draw(st.integers(0, 4)))
    ]
    extra_local = [
        fill(f"L-{i}", draw(quantities), str(draw(prices)), seconds=draw(st.integers(0, 7200)))
        for i in range(draw(st.integers(0, 4)))
    ]
    engine_copies = [
        Fill(f"ENG-{c.fill_id}", c.order_id, c.symbol, c.quantity, c.price, c.timestamp, venue_fill_id=c.fill_id)
        for c in common
    ]
    return common, extra_broker, extra_local, engine_copies


@given(histories(), st.integers(min_value=-50, max_value=50))
def test_the_explanation_names_exactly_the_missing_and_extra_fills(
    history: tuple[list[Fill], list[Fill], list[Fill], list[Fill]], offset: int
) -> None:
    common, extra_broker, extra_local, engine_copies = history
    assume(not {(b.quantity, b.price) for b in extra_broker} & {(e.quantity, e.price) for e in extra_local})
    net = sum((f.quantity for f in extra_broker), Decimal(0)) - sum((f.quantity for f in extra_local), Decimal(0))
    gap = net + offset

    found = explain(gap, [*engine_copies, *extra_local], [*common, *extra_broker])

    assert {f.fill_id for f in found.missing_locally} == {f.fill_id for f in extra_broker}
    assert {f.fill_id for f in found.missing_at_broker} == {f.fill_id for f in extra_local}
    assert found.differing == ()
    assert (found.verdict == "explained") == bool((extra_broker or extra_local) and net == gap)
