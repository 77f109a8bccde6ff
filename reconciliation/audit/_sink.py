"""The audit store as a sink: every finished run and every correction event, recorded in
order by a delivery actor.

The store's transient failures (a locked file, a server that is down) make the sink
unavailable, so the delivery actor keeps the runs and retries; any other store error is
a refusal of that one run, which is set aside so the runs behind it are recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from reconciliation._domain.correction import CorrectionEvent
from reconciliation._domain.error_text import describe_error
from reconciliation._domain.sinks import Sent, SinkUnavailableError
from reconciliation.audit._errors import AuditStoreError, AuditStoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciliation._domain.sinks import Delivery
    from reconciliation.audit._store import AuditStore

__all__ = ["AuditSink"]


class AuditSink:
    """Records runs in an `AuditStore`; the schema is brought up to date at the first write."""

    name = "audit"

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._migrated = False

    def prepare(self, run: Delivery) -> Delivery:
        """The run itself, without the books it compared (not recorded, and large)."""
        if isinstance(run, CorrectionEvent) or run.snapshot is None:
            return run
        return attrs.evolve(run, snapshot=None)

    def weight(self, item: Delivery) -> int:
        return 1 if isinstance(item, CorrectionEvent) else 1 + len(item.result.discrepancies)

    def send(self, items: Sequence[Delivery]) -> Sent:
        for index, run in enumerate(items):
            try:
                if not self._migrated:
                    self._store.migrate()
                    self._migrated = True
                if isinstance(run, CorrectionEvent):
                    self._store.record_correction(run)
                else:
                    self._store.record_run(run.result, run.ageing)
            except AuditStoreUnavailableError as error:
                if index:
                    return Sent(index)
                raise SinkUnavailableError(str(error)) from error
            except (AuditStoreError, ValueError) as error:
                return Sent(index, refused=describe_error(error))
        return Sent(len(items))

    def close(self) -> None:
        self._store.close()
