"""How a venue profile's figures are read from a venue's raw answer (`adapters._raw`)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciliation.adapters import BrokerDataError
from reconciliation.adapters._raw import Figure, Path, number

ANSWER = {
    "marginSummary": {"accountValue": "100.0"},
    "assetPositions": [
        {"position": {"unrealizedPnl": "1.25"}},
        {"position": {"unrealizedPnl": "-0.5"}},
    ],
    "accounts": {"fi_xbtusd": {"balances": {"xbt": "0.1"}}, "fv_xrpxbt": {"balances": {"xbt": "0.2"}}, "flex": {}},
    "avgPrice": "",
    "entryPrice": "1073.85",
    "float": 0.006687487,
}


def test_a_figure_is_the_venues_text_exactly() -> None:
    assert Figure("marginSummary.accountValue").read(ANSWER, "w") == Decimal("100.0")


def test_a_wildcard_sums_every_match() -> None:
    assert Figure("accounts.f[iv]_*.balances.*").read(ANSWER, "w") == Decimal("0.3")


def test_terms_are_added_and_subtracted_exactly() -> None:
    figure = Figure("marginSummary.accountValue - assetPositions.*.position.unrealizedPnl")

    assert figure.read(ANSWER, "w") == Decimal("99.25")


def test_an_alternative_is_read_where_the_first_path_is_not_sent() -> None:
    assert Figure("avgPrice|entryPrice").read(ANSWER, "w") == Decimal("1073.85")


def test_a_figure_whose_first_term_is_not_sent_is_none() -> None:
    assert Figure("totalEquity + marginSummary.accountValue").read(ANSWER, "w") is None


def test_a_later_term_that_is_not_sent_counts_zero() -> None:
    assert Figure("marginSummary.accountValue - unrealisedPnl").read(ANSWER, "w") == Decimal("100.0")


def test_a_json_number_is_read_back_as_the_digits_the_venue_sent() -> None:
    assert Figure("float").read(ANSWER, "w") == Decimal("0.006687487")


def test_a_value_that_is_not_a_number_fails_naming_the_path() -> None:
    with pytest.raises(BrokerDataError, match=r"okx balance USDT marginSummary is dict"):
        Figure("marginSummary").read(ANSWER, "okx balance USDT")


def test_a_path_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a path"):
        Path("a..b|")


def test_a_float_from_ccxt_is_the_venues_digits_and_a_decimal_is_kept() -> None:
    assert (number(2.3483, "w"), number(Decimal("2.3483"), "w"), number("2.3483", "w")) == (Decimal("2.3483"),) * 3
