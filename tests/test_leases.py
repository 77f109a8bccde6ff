"""Account leases and runtime names: one owner per account across runtimes, a standby elsewhere.

The runtimes here run on fakeredis and a `ManualClock` (renewals fire as the test moves
time); tests/test_lease_takeover.py runs two real `reconciliation run` processes.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import fakeredis
import pytest
import redis

from reconciliation import InMemoryPortfolio, ReconciliationConfig
from reconciliation._cli.board.state import BoardState
from reconciliation._publishing.inbound import decode
from reconciliation._publishing.leases import AccountLeases, HeldElsewhere, Lease
from reconciliation._publishing.runtime_names import NameInUseError, RuntimeName, new_instance
from reconciliation._publishing.streams import StreamCursor
from reconciliation._runtime.accounts import Account
from reconciliation._runtime.clock import ManualClock
from reconciliation._runtime.comparator_actor import ComparatorActor
from reconciliation._runtime.service import ReconciliationRuntime
from reconciliation.testing import ScriptedBroker, capture_published, settle

if TYPE_CHECKING:
    from collections.abc import Iterator

    from reconciliation.testing import PublishedCapture

LEASE = 30.0
RENEWAL = LEASE / 3


def leases_on(server: fakeredis.FakeServer, owner: str, ttl: float = LEASE) -> AccountLeases:
    return AccountLeases(lambda: fakeredis.FakeRedis(server=server), owner=owner, ttl_seconds=ttl)


def test_a_free_account_is_taken_under_a_new_token_and_renewed_under_the_same() -> None:
    leases = leases_on(fakeredis.FakeServer(), "eu-1")

    first, again = leases.claim_all(["ACC-1"]), leases.claim_all(["ACC-1"])

    assert first == again == {"ACC-1": Lease("ACC-1", 1, 30_000)}


def test_an_account_held_elsewhere_names_its_holder_and_how_long_its_lease_has_left() -> None:
    server = fakeredis.FakeServer()
    leases_on(server, "eu-1").claim_all(["ACC-1"])

    (claimed,) = leases_on(server, "eu-2").claim_all(["ACC-1"]).values()

    assert isinstance(claimed, HeldElsewhere)
    assert claimed.holder == "eu-1"
    assert 0 < claimed.ttl_ms <= 30_000


def test_a_released_lease_is_taken_by_the_next_claimant_under_a_higher_token() -> None:
    server = fakeredis.FakeServer()
    owner, standby = leases_on(server, "eu-1"), leases_on(server, "eu-2")
    owner.claim_all(["ACC-1", "ACC-2"])

    owner.release_all(["ACC-1"])

    claimed = standby.claim_all(["ACC-1", "ACC-2"])

    assert claimed["ACC-1"] == Lease("ACC-1", 2, 30_000)
    assert isinstance(claimed["ACC-2"], HeldElsewhere)


def test_releasing_leaves_another_runtimes_lease_alone() -> None:
    server = fakeredis.FakeServer()
    leases_on(server, "eu-1").claim_all(["ACC-1"])

    leases_on(server, "eu-2").release_all(["ACC-1"])

    assert isinstance(leases_on(server, "eu-3").claim_all(["ACC-1"])["ACC-1"], HeldElsewhere)


def test_an_unanswered_claim_raises_so_that_nobody_mistakes_it_for_a_lease() -> None:
    server = fakeredis.FakeServer()
    server.connected = False

    with pytest.raises(redis.ConnectionError):
        leases_on(server, "eu-1").claim_all(["ACC-1"])


def name_on(server: fakeredis.FakeServer, name: str, instance: str, renew: float = 0.2) -> RuntimeName:
    return RuntimeName(
        lambda: fakeredis.FakeRedis(server=server), name=name, instance=instance, ttl_seconds=3 * renew, renew_seconds=renew
    )


def test_a_name_nobody_holds_is_claimed_at_once() -> None:
    name = name_on(fakeredis.FakeServer(), "eu-1", new_instance())

    name.claim()

    assert name.renew() is None
    name.release()


def test_a_name_held_by_a_live_process_elsewhere_is_refused_with_what_to_do() -> None:
    server = fakeredis.FakeServer()
    live = name_on(server, "eu-1", "elsewhere:4242:aaaa")
    live.renew()
    renewing = threading.Event()

    def renew() -> None:
        while not renewing.wait(0.05):
            live.renew()

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        with pytest.raises(NameInUseError, match=r"another live process runs as runtime 'eu-1'.*own runtime name"):
            name_on(server, "eu-1", new_instance()).claim()
    finally:
        renewing.set()
        renewer.join()


def test_a_name_whose_process_elsewhere_stopped_renewing_is_taken_over_after_one_renewal_interval() -> None:
    server = fakeredis.FakeServer()
    name_on(server, "eu-1", "elsewhere:4242:aaaa").renew()
    started = time.monotonic()

    name_on(server, "eu-1", new_instance()).claim()

    assert 0.2 <= time.monotonic() - started < 1.0


def test_a_name_whose_process_on_this_host_is_gone_is_taken_over_at_once() -> None:
    server = fakeredis.FakeServer()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    name_on(server, "eu-1", f"{socket.gethostname()}:{gone.stdout.strip()}:aaaa", renew=5.0).renew()
    started = time.monotonic()

    name_on(server, "eu-1", new_instance(), renew=5.0).claim()

    assert time.monotonic() - started < 1.0


def test_a_second_runtime_of_this_process_under_a_name_in_use_is_refused_at_once() -> None:
    server = fakeredis.FakeServer()
    first = name_on(server, "eu-1", new_instance(), renew=5.0)
    first.claim()
    try:
        with pytest.raises(NameInUseError, match="a runtime of this process already runs as 'eu-1'"):
            name_on(server, "eu-1", new_instance(), renew=5.0).claim()
    finally:
        first.release()


class Node:
    """A runtime of two accounts on fakeredis and a ManualClock, under `name`."""

    def __init__(self, server: fakeredis.FakeServer, name: str, accounts: tuple[str, ...] = ("ACC-1",)) -> None:
        self.clock = ManualClock()
        self.brokers = {a: ScriptedBroker(a, cash=Decimal(1000)) for a in accounts}
        self.runtime = ReconciliationRuntime(
            [
                Account(ReconciliationConfig(a, interval_seconds=60), InMemoryPortfolio(a, cash=Decimal(1000)), self.brokers[a])
                for a in accounts
            ],
            fakeredis.FakeRedis(server=server),
            clock=self.clock,
            name=name,
            lease_seconds=LEASE,
        )

    def start(self) -> None:
        asyncio.run(self.runtime.start())
        settle(self.runtime)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        settle(self.runtime)

    def stop(self) -> None:
        asyncio.run(self.runtime.stop())


@pytest.fixture
def published() -> Iterator[PublishedCapture]:
    with capture_published() as capture:
        yield capture


@pytest.fixture
def nodes() -> Iterator[Any]:
    made: list[Node] = []

    def make(server: fakeredis.FakeServer, name: str, accounts: tuple[str, ...] = ("ACC-1",)) -> Node:
        node = Node(server, name, accounts)
        made.append(node)
        return node

    yield make
    for node in made:
        node.stop()


def stream_fields(server: fakeredis.FakeServer) -> list[dict[str, str]]:
    reader = fakeredis.FakeRedis(server=server, decode_responses=True)
    return [fields for _, fields in reader.xrange("reconciliation:stream:result")]


def test_each_stream_entry_of_a_run_names_the_runtime_and_the_fencing_token_it_was_made_under(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    nodes(server, "eu-1").start()

    (entry,) = stream_fields(server)

    assert (entry["runtime"], entry["fencing_token"]) == ("eu-1", "1")


def test_an_account_leased_elsewhere_is_standby_it_is_not_read_published_or_run(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    nodes(server, "eu-1").start()
    second = nodes(server, "eu-2")

    second.start()
    second.advance(60)

    assert second.runtime.health().standby == {"ACC-1": "standby (owned by eu-1)"}
    assert second.brokers["ACC-1"].calls == []
    assert {entry["runtime"] for entry in stream_fields(server)} == {"eu-1"}


def test_each_account_has_its_own_owner(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    nodes(server, "eu-1", ("ACC-1",)).start()
    second = nodes(server, "eu-2", ("ACC-1", "ACC-2"))

    second.start()

    assert second.runtime.health().standby == {"ACC-1": "standby (owned by eu-1)"}
    assert [e["runtime"] for e in stream_fields(server)] == ["eu-1", "eu-2"]


def test_an_asker_of_a_standby_account_is_told_who_owns_it(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    nodes(server, "eu-1").start()
    second = nodes(server, "eu-2")
    second.start()

    result = asyncio.run(second.runtime.reconcile("ACC-1"))

    assert (result.status, result.error) == ("failed", "not reconciled here: standby (owned by eu-1)")


def test_a_standby_takes_the_account_over_at_its_next_renewal_once_the_owner_let_it_go(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    owner = nodes(server, "eu-1")
    owner.start()
    standby = nodes(server, "eu-2")
    standby.start()

    owner.stop()
    standby.advance(RENEWAL)

    assert standby.runtime.health().standby == {}
    entries = stream_fields(server)
    assert [(e["runtime"], e["fencing_token"]) for e in entries] == [("eu-1", "1"), ("eu-2", "2")]
    assert '"trigger":"startup"' in server_payload(entries[-1])


def test_the_board_shows_a_takeover_as_its_owner_changing(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    owner = nodes(server, "eu-1")
    owner.start()
    standby = nodes(server, "eu-2")
    standby.start()
    board, cursor = BoardState(), StreamCursor(fakeredis.FakeRedis(server=server))
    for entry in cursor.start(replay_last=100):
        board.apply(decode(entry))
    before = str(board.accounts()[0].last_run.owner)

    owner.stop()
    standby.advance(RENEWAL)
    for entry in cursor.read(block_seconds=0.01):
        board.apply(decode(entry))

    assert (before, str(board.accounts()[0].last_run.owner)) == ("eu-1 (token 1)", "eu-2 (token 2)")


def server_payload(fields: dict[str, str]) -> str:
    return fields["payload"].replace(" ", "")


def test_a_standby_retries_when_the_holders_lease_expires_not_a_full_renewal_later(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    reader = fakeredis.FakeRedis(server=server)
    nodes(server, "eu-1").start()
    reader.pexpire("reconciliation:lease:ACC-1", 500)
    standby = nodes(server, "eu-2")
    standby.start()
    time.sleep(0.6)  # the lease expires on Redis's clock

    standby.advance(0.6)

    assert standby.runtime.health().standby == {}


def test_an_owner_that_cannot_renew_says_so_and_keeps_reconciling(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    owner = nodes(server, "eu-1")
    owner.start()
    server.connected = False

    owner.advance(RENEWAL)
    owner.advance(RENEWAL)
    calls = len(owner.brokers["ACC-1"].calls)
    owner.advance(60)

    assert owner.runtime.health().standby == {}
    assert "leases is degraded" in " ".join(owner.runtime.health().problems)
    assert len(owner.brokers["ACC-1"].calls) > calls


def test_runs_made_while_the_lease_is_unconfirmed_carry_no_fence_and_are_published_when_redis_answers(
    nodes: Any,
) -> None:
    server = fakeredis.FakeServer()
    owner = nodes(server, "eu-1")
    owner.start()
    server.connected = False
    owner.advance(2 * RENEWAL)
    owner.advance(60)

    server.connected = True
    owner.advance(RENEWAL)
    owner.advance(60)

    fences = [(e.get("runtime"), e.get("fencing_token")) for e in stream_fields(server)]
    assert fences[0] == ("eu-1", "1")
    assert (None, None) in fences
    assert fences[-1] == ("eu-1", "1")


def test_without_redis_at_start_every_account_is_reconciled_without_a_lease(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    node = nodes(server, "eu-1")

    node.start()

    assert node.brokers["ACC-1"].calls != []
    assert node.runtime.health().standby == {}
    assert "leases is degraded" in " ".join(node.runtime.health().problems)


def test_a_runtime_that_started_without_redis_takes_its_leases_when_redis_answers(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    node = nodes(server, "eu-1")
    node.start()

    server.connected = True
    node.advance(RENEWAL)
    node.advance(60)

    assert [(e.get("runtime"), e.get("fencing_token")) for e in stream_fields(server)][-1] == ("eu-1", "1")


def test_a_runtime_that_started_without_redis_is_standby_once_redis_names_another_owner(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    nodes(server, "eu-1").start()
    server.connected = False
    late = nodes(server, "eu-2")
    late.start()

    server.connected = True
    late.advance(RENEWAL)

    assert late.runtime.health().standby == {"ACC-1": "standby (owned by eu-1)"}


def test_a_second_runtime_under_a_name_in_use_is_refused_at_start(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    nodes(server, "eu-1").start()

    with pytest.raises(NameInUseError, match="'eu-1'"):
        nodes(server, "eu-1").start()


def test_a_runtime_restarted_under_its_name_takes_its_leases_back_under_the_same_token(nodes: Any) -> None:
    server = fakeredis.FakeServer()
    first = nodes(server, "eu-1")
    first.start()
    reader = fakeredis.FakeRedis(server=server)
    reader.delete("reconciliation:runtime:eu-1")  # as if its process were gone, name expired, leases not yet
    first.runtime._runtime._actors = []  # it "crashed": nothing of it is stopped or released
    restarted = nodes(server, "eu-1")

    restarted.start()

    assert [(e["runtime"], e["fencing_token"]) for e in stream_fields(server)] == [("eu-1", "1"), ("eu-1", "1")]


def test_a_runtime_name_must_be_printable_text() -> None:
    with pytest.raises(ValueError, match="runtime name"):
        ReconciliationRuntime(
            [Account(ReconciliationConfig("A"), InMemoryPortfolio("A", cash=Decimal(0)), ScriptedBroker("A"))],
            fakeredis.FakeRedis(),
            name="eu\n1",
        )


def test_a_lease_shorter_than_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lease_seconds must be from 1 to 3600 s, not 0\.5"):
        ReconciliationRuntime(
            [Account(ReconciliationConfig("A"), InMemoryPortfolio("A", cash=Decimal(0)), ScriptedBroker("A"))],
            fakeredis.FakeRedis(),
            lease_seconds=0.5,
        )



def test_without_lua_the_same_claims_are_made_by_transaction() -> None:
    """fakeredis where lupa is not installed: WATCH/MULTI instead of the script."""
    script = textwrap.dedent(
        """
        import sys

        class NoLupa:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "lupa":
                    raise ImportError("lupa is not installed")

        sys.meta_path.insert(0, NoLupa())
        import fakeredis
        from reconciliation._publishing.leases import AccountLeases

        server = fakeredis.FakeServer()
        owner = AccountLeases(lambda: fakeredis.FakeRedis(server=server), owner="eu-1", ttl_seconds=30)
        other = AccountLeases(lambda: fakeredis.FakeRedis(server=server), owner="eu-2", ttl_seconds=30)
        print(owner.claim_all(["ACC-1"]), owner.claim_all(["ACC-1"]))
        held = other.claim_all(["ACC-1"])["ACC-1"]
        print(held.holder, 0 < held.ttl_ms <= 30000)
        owner.release_all(["ACC-1"])
        print(other.claim_all(["ACC-1"]))
        """
    )
    finished = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        "{'ACC-1': Lease(account_id='ACC-1', token=1, ttl_ms=30000)} {'ACC-1': Lease(account_id='ACC-1', token=1, ttl_ms=30000)}",
        "eu-1 True",
        "{'ACC-1': Lease(account_id='ACC-1', token=2, ttl_ms=30000)}",
    ]


def test_a_start_that_fails_after_claiming_gives_the_name_and_the_leases_back(
    nodes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fakeredis.FakeServer()

    def refuse(*_: object, **__: object) -> None:
        msg = "the comparator could not start"
        raise RuntimeError(msg)

    with monkeypatch.context() as patched:
        patched.setattr(ComparatorActor, "start", refuse)
        with pytest.raises(RuntimeError, match="comparator could not start"):
            nodes(server, "eu-1").start()
    again = nodes(server, "eu-1")
    again.start()

    assert again.runtime.health().standby == {}
    assert [(e["runtime"], e["fencing_token"]) for e in stream_fields(server)] == [("eu-1", "2")]
