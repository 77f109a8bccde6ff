"""`python -m reconciliation` is the `reconciliation` command."""

from __future__ import annotations

from reconciliation._cli.main import main

__all__: list[str] = []

main(prog_name="reconciliation")
