"""Under which lease something was done: the fence each run and correction step carries.

A runtime owns an account while it holds the account's lease on Redis (see
`_publishing/leases.py`); the lease's token grows with every new owner. What a runtime
publishes or applies carries its name and that token, so that what a deposed owner sent
late can be told from what the new owner sent.
"""

from __future__ import annotations

import attrs

__all__ = ["Fence"]


@attrs.frozen
class Fence:
    """The runtime that owned the account, and the fencing token of its lease then."""

    runtime: str
    token: int
