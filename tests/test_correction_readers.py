"""Corrections as the readers show them: `watch`, the board, and the demo that plays one through."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
from click.testing import CliRunner
from rich.console import Console

from reconciliation import CorrectionEvent, CorrectionStatus
from reconciliation._cli.board.state import BoardState
from reconciliation._cli.demo import DemoReport
from reconciliation._cli.main import main
from reconciliation._cli.render import correction_line
from reconciliation._cli.watch import human_line, watch
from reconciliation._domain.correction import Correction
from reconciliation._domain.models import AssetType, DiscrepancySeverity, DiscrepancyType
from reconciliation._publishing.inbound import Message, decode
from reconciliation._publishing.redis_sink import CORRECTION_STREAM
from reconciliation._publishing.streams import StreamEntry
from reconciliation._wire.payloads import CORRECTION_CHANNEL, correction_payload, encode

if TYPE_CHECKING:
    import redis
    from redis_server import RedisServer

AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def payload(status: CorrectionStatus = CorrectionStatus.APPLIED, **changes: Any) -> dict[str, Any]:
    correction = Correction(
        break_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        account_id="ACC-1",
        type=DiscrepancyType.MISSING_LOCAL,
        symbol="NVDA",
        asset_type=AssetType.STOCK,
        currency=None,
        local_value=None,
        broker_value=Decimal(40),
        observed_at=AT,
        consecutive_runs=2,
        quantity=Decimal(40),
        price=Decimal("120.00"),
        avg_cost=Decimal("120.00"),
        notional=Decimal("4800.00"),
    )
    event = CorrectionEvent(
        status, correction, "apply", AT, "reconciliation@host:1", 2, DiscrepancySeverity.CRITICAL
    )
    return correction_payload(event) | changes


def entry(body: dict[str, Any]) -> StreamEntry:
    return StreamEntry(CORRECTION_STREAM, "1-0", encode(body).encode(), replayed=False)


def text(line: Any) -> str:
    console = Console(file=io.StringIO(), color_system=None, width=400, soft_wrap=True)
    console.print(line)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_correction_entry_is_read_from_its_stream_as_a_correction() -> None:
    message = decode(entry(payload()))

    assert (message.channel, message.problem) == (CORRECTION_CHANNEL, None)


def test_a_correction_entry_without_its_status_is_malformed() -> None:
    body = payload()
    del body["status"]

    assert decode(entry(body)).problem == "missing status"


def test_a_correction_is_one_line_saying_what_happened_and_the_change() -> None:
    shown = text(correction_line(payload()))

    assert "APPLIED" in shown
    assert "missing_local     NVDA" in shown
    assert "fill +40 at 120.00, average cost 120.00  (apply mode)" in shown


def test_a_failed_correction_shows_its_reason() -> None:
    shown = text(correction_line(payload(CorrectionStatus.FAILED, reason="RuntimeError: book locked")))

    assert shown.rstrip().endswith(": RuntimeError: book locked")


def test_a_correction_payload_cannot_write_to_the_terminal() -> None:
    shown = text(correction_line(payload(symbol="\x1b[2J", reason="\x1b]0;x\x07")))

    assert "\x1b" not in shown


def test_watch_shows_the_corrections_in_the_stream() -> None:
    client = fakeredis.FakeRedis()
    client.xadd(CORRECTION_STREAM, {"payload": encode(payload())})
    shown: list[Message] = []

    watch(client, shown.append, replay_last=10, timeout=0.05)

    (message,) = shown
    assert "APPLIED" in text(human_line(message))


def test_the_board_is_not_changed_by_a_correction() -> None:
    board = BoardState()

    assert board.apply(decode(entry(payload()))) is False
    assert board.open_break(str(uuid.uuid4())) is None


def test_the_demo_succeeds_only_with_a_break_corrected_through_its_whole_life() -> None:
    first = payload(CorrectionStatus.PROPOSED) | {"fills": [{"fill_id": "FILL-5"}]}
    applied = [first | {"status": status} for status in ("proposed", "confirmed", "applied")]

    assert not DemoReport((), (), tuple(applied)).corrected
    assert DemoReport((), (), (*applied, first | {"status": "verified"})).corrected


def test_the_demo_succeeds_only_with_a_break_corrected_by_booking_the_fill_that_explains_it() -> None:
    synthetic = payload(CorrectionStatus.PROPOSED) | {"fills": []}
    life = [synthetic | {"status": status} for status in ("proposed", "confirmed", "applied", "verified")]

    assert not DemoReport((), (), tuple(life)).corrected


def test_a_correction_that_books_fills_names_them() -> None:
    fill = {"fill_id": "E-2", "side": "buy", "quantity": "10", "price": "421.00"}

    assert "book broker fill E-2 BUY 10 @ 421.00" in text(correction_line(payload() | {"fills": [fill]}))


@pytest.mark.real_redis
def test_the_demo_proposes_confirms_applies_and_verifies_one_correction(
    redis_server: RedisServer, real_redis: redis.Redis
) -> None:
    account = f"TEST-{uuid.uuid4().hex[:8]}"

    outcome = CliRunner().invoke(
        main,
        ["demo", "--quick", "--redis-url", f"redis://127.0.0.1:{redis_server.port}/0", "--account", account],
    )

    assert outcome.exit_code == 0, outcome.output
    steps = [
        (step["status"], step["type"], step["symbol"])
        for _, fields in real_redis.xrange(CORRECTION_STREAM)
        if (step := json.loads(fields["payload"]))["account_id"] == account
    ]
    assert steps == [
        (status, "missing_local", "NVDA") for status in ("proposed", "confirmed", "applied", "verified")
    ]
    assert "NVDA: corrected, and the run after it found the break resolved." in outcome.output
    assert "Corrections (missing_local, apply mode)" in outcome.output
