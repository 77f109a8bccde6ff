"""`python -m reconciliation` is the `reconciliation` command."""

from __future__ import annotations

from reconciliation.cli import main

__all__: list[str] = []

main(prog_name="reconciliation")
