"""The messages actors and callers exchange. All immutable; see docs/architecture.md."""

from __future__ import annotations

import attrs

from reconciliation._values import non_empty_text

__all__ = ["ReconcileRequest"]


@attrs.frozen
class ReconcileRequest:
    """Ask the service's ref for an on-demand run; the reply is a ReconciliationResult."""

    account_id: str = attrs.field(validator=non_empty_text)
    requested_by: str = attrs.field(default="api", validator=non_empty_text)
