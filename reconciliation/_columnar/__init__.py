"""The columnar wing: books too large for one object per position, as validated columns.

Its entry point for the rest of the package is here: a book's columnar answer is checked
into a `PositionColumns` (`parse_columns`), which the domain then compares and corrects
through the `ColumnarPositions` protocol, never reading the columns itself. Importing
this package needs neither pyarrow nor numpy; what reads or compares columns does (the
`fast` extra): `input` builds columns, `compare` compares two sides.
"""

from __future__ import annotations

from reconciliation._columnar.columns import (
    FAST_EXTRA,
    PLAIN_DECIMAL,
    ColumnsError,
    PositionColumns,
    fast_available,
    is_columnar_batch,
    parse_columns,
)

__all__ = [
    "FAST_EXTRA",
    "PLAIN_DECIMAL",
    "ColumnsError",
    "PositionColumns",
    "fast_available",
    "is_columnar_batch",
    "parse_columns",
]
