"""What needs no extra: recognising a columnar answer, and refusing one when the fast extra is missing."""

from __future__ import annotations

import pytest

from reconciliation._columnar import columns
from reconciliation._domain.models import BrokerPosition
from reconciliation._runtime.snapshot import SnapshotError, parse_positions


class ArrowStream:
    """Anything exporting an Arrow stream, as a pyarrow Table or a polars DataFrame does."""

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return object()


def test_an_object_exporting_an_arrow_stream_is_a_columnar_answer() -> None:
    assert columns.is_columnar_batch(ArrowStream())


def test_a_list_of_positions_is_not_a_columnar_answer() -> None:
    assert not columns.is_columnar_batch([])


def test_without_the_fast_extra_a_columnar_answer_is_malformed_data_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(columns, "fast_available", lambda: False)

    with pytest.raises(SnapshotError) as refused:
        parse_positions(BrokerPosition, ArrowStream(), call="broker.get_positions")

    assert str(refused.value) == (
        "broker.get_positions answered with columns (ArrowStream), which need the fast extra: "
        "pip install 'reconciliation[fast]'"
    )
