"""The documented examples run and do what they say."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

from reconciliation import DiscrepancyType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_a_pykka_engine_tells_fills_and_its_risk_actor_asks_for_runs() -> None:
    spec = importlib.util.spec_from_file_location("pykka_engine", EXAMPLES / "pykka_engine.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pykka_engine"] = module
    spec.loader.exec_module(module)
    before, after = asyncio.run(module.main())
    assert before.is_clean
    assert before.context == {"trigger": "on_demand", "requested_by": "risk"}
    assert {d.type for d in after.discrepancies} == {
        DiscrepancyType.QUANTITY_MISMATCH,
        DiscrepancyType.CASH_MISMATCH,
    }
