"""One module per command of `reconciliation`, each holding its click command and its own helpers.

The group (`reconciliation._cli.main`) imports a command's module only to run it or show its help.
"""

from __future__ import annotations

__all__: list[str] = []
