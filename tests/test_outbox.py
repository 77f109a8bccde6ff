"""The outbox: a bounded FIFO of whole runs that drops, counts and logs the oldest."""

from __future__ import annotations

import logging

import pytest

from reconciliation._publishing.outbox import Outbox, PendingRun


def run(name: str, payloads: int = 1) -> PendingRun:
    return PendingRun(name, tuple(("reconciliation:result", f'{{"n":{i}}}') for i in range(payloads)))


def test_runs_come_out_in_the_order_they_went_in() -> None:
    outbox = Outbox(max_runs=5)
    for name in ("a", "b", "c"):
        outbox.append(run(name))

    assert [r.run_id for r in outbox] == ["a", "b", "c"]


def test_it_counts_runs_and_their_payloads() -> None:
    outbox = Outbox(max_runs=5)
    outbox.append(run("a", payloads=3))
    outbox.append(run("b", payloads=2))

    assert (len(outbox), outbox.payload_count) == (2, 5)


def test_when_full_the_oldest_run_is_dropped_for_the_newest() -> None:
    outbox = Outbox(max_runs=2)
    outbox.append(run("a"))
    outbox.append(run("b"))

    dropped = outbox.append(run("c"))

    assert dropped == run("a")
    assert [r.run_id for r in outbox] == ["b", "c"]


def test_a_drop_is_counted_in_runs_and_payloads() -> None:
    outbox = Outbox(max_runs=1)
    outbox.append(run("a", payloads=4))
    outbox.append(run("b", payloads=2))
    outbox.append(run("c", payloads=1))

    assert (outbox.dropped_runs, outbox.dropped_payloads) == (2, 6)
    assert outbox.payload_count == 1


def test_a_drop_is_logged_at_error_with_the_run_and_its_payloads(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(max_runs=1)
    outbox.append(run("run-a", payloads=4))

    with caplog.at_level(logging.ERROR, logger="reconciliation._publishing.outbox"):
        outbox.append(run("run-b"))

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "run-a" in record.getMessage()
    assert "4 payloads" in record.getMessage()


def test_appending_with_room_drops_nothing() -> None:
    outbox = Outbox(max_runs=2)

    assert outbox.append(run("a")) is None
    assert outbox.append(run("b")) is None
    assert outbox.dropped_runs == 0


def test_head_takes_whole_runs_up_to_the_payload_budget() -> None:
    outbox = Outbox(max_runs=5)
    for name in ("a", "b", "c"):
        outbox.append(run(name, payloads=3))

    assert [r.run_id for r in outbox.head(max_payloads=7)] == ["a", "b"]


def test_head_takes_a_run_larger_than_the_budget_alone() -> None:
    outbox = Outbox(max_runs=5)
    outbox.append(run("big", payloads=10))
    outbox.append(run("small"))

    assert [r.run_id for r in outbox.head(max_payloads=3)] == ["big"]


def test_head_leaves_the_runs_queued() -> None:
    outbox = Outbox(max_runs=5)
    outbox.append(run("a"))

    outbox.head(max_payloads=10)

    assert len(outbox) == 1


def test_remove_head_takes_the_oldest_runs_and_their_payloads_off() -> None:
    outbox = Outbox(max_runs=5)
    for name, payloads in (("a", 2), ("b", 3), ("c", 4)):
        outbox.append(run(name, payloads=payloads))

    removed = outbox.remove_head(2)

    assert [r.run_id for r in removed] == ["a", "b"]
    assert ([r.run_id for r in outbox], outbox.payload_count) == (["c"], 4)


def test_removing_delivered_runs_is_not_a_drop() -> None:
    outbox = Outbox(max_runs=5)
    outbox.append(run("a"))

    outbox.remove_head(1)

    assert (outbox.dropped_runs, outbox.dropped_payloads) == (0, 0)


def test_an_outbox_holds_at_least_one_run() -> None:
    with pytest.raises(ValueError, match="max_runs"):
        Outbox(max_runs=0)
