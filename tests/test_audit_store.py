from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from reconciliation._domain.fills import Fill, explain
from reconciliation._domain.models import (
    AssetType,
    Discrepancy,
    DiscrepancySeverity,
    DiscrepancyType,
    NettedSymbol,
    ReconciliationResult,
)
from reconciliation.audit import (
    SCHEMA_VERSION,
    AgeingPolicy,
    AuditSchemaError,
    AuditStoreError,
    AuditStoreUnavailableError,
    BreakTracker,
    NoAuditTablesError,
    PostgresAuditStore,
    SqliteAuditStore,
    open_store,
)
from reconciliation.audit import _sql as audit_sql

T0 = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
ACC = "ACC-1"
CRITICAL, WARNING = DiscrepancySeverity.CRITICAL, DiscrepancySeverity.WARNING


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def quantity(
    symbol: str = "AAPL", local: str = "100", broker: str = "150", account: str = ACC
) -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.QUANTITY_MISMATCH,
        severity=CRITICAL,
        symbol=symbol,
        local_value=Decimal(local),
        broker_value=Decimal(broker),
        timestamp=T0,
        account_id=account,
    )


def cash(local: str = "1000.00", broker: str = "987.65") -> Discrepancy:
    return Discrepancy(
        type=DiscrepancyType.CASH_MISMATCH,
        severity=WARNING,
        symbol=None,
        local_value=Decimal(local),
        broker_value=Decimal(broker),
        timestamp=T0,
        account_id=ACC,
    )


def run(minutes: float, *discrepancies: Discrepancy, error: str | None = None, account: str = ACC, **kwargs):
    return ReconciliationResult(
        run_id=uuid.uuid4(),
        account_id=account,
        timestamp=at(minutes),
        discrepancies=discrepancies,
        error=error,
        **kwargs,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "audit.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def stores(target):
    """Opens stores on the test's database and closes every one afterwards."""
    opened = []

    def open_one(**kwargs):
        store = open_store(target, **kwargs)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(stores):
    store = stores()
    store.migrate()
    return store


def record(store, tracker, result):
    update = tracker.observe(result)
    store.record_run(result, update)
    return update


class TestMigrate:
    def test_a_fresh_database_has_no_schema_version(self, stores):
        assert stores().schema_version() == 0

    def test_migrate_brings_the_schema_to_the_latest_version(self, stores):
        store = stores()
        store.migrate()
        assert store.schema_version() == SCHEMA_VERSION

    def test_a_suspect_run_is_recorded_with_its_reason(self, store):
        suspect = run(0, quantity(), suspect="it holds 0 positions where recent answers held 200")
        record(store, BreakTracker(), suspect)

        (recorded,) = store.list_runs(ACC)

        assert recorded.suspect == "it holds 0 positions where recent answers held 200"
        assert recorded.to_result().suspect == recorded.suspect

    def test_a_store_of_schema_version_3_keeps_its_runs_and_gains_the_suspect_column(
        self, stores, monkeypatch
    ):
        monkeypatch.setattr(audit_sql, "MIGRATIONS", audit_sql.MIGRATIONS[:3])
        monkeypatch.setattr(audit_sql, "SCHEMA_VERSION", 3)
        for table, newer in (("_RUNS", "suspect"), ("_DISCREPANCIES", "explanation")):
            old_table = getattr(audit_sql, table)
            columns = {c: read for c, read in old_table.columns.items() if c != newer}
            monkeypatch.setattr(audit_sql, table, attrs.evolve(old_table, columns=columns))
        old = stores()
        old.migrate()
        before = run(0, quantity())
        record(old, BreakTracker(), before)
        monkeypatch.undo()

        old.migrate()

        (recorded,) = old.list_runs(ACC)
        assert (old.schema_version(), recorded.run_id, recorded.suspect) == (SCHEMA_VERSION, before.run_id, None)

    def test_an_explained_break_is_recorded_with_its_fills(self, store):
        missed = Fill("E-2", "O-2", "AAPL", 10, "412.30", at(0))
        explained = attrs.evolve(quantity(), explanation=explain(Decimal(10), [], [missed]))
        record(store, BreakTracker(), run(0, explained))

        (recorded,) = store.list_runs(ACC)
        (history,) = store.break_history(recorded.discrepancies[0].break_id)

        assert recorded.discrepancies[0].discrepancy.explanation == explained.explanation
        assert history.explanation == explained.explanation

    def test_migrate_is_idempotent(self, store):
        first = run(0, quantity())
        record(store, BreakTracker(), first)
        store.migrate()
        store.migrate()
        assert store.schema_version() == SCHEMA_VERSION
        assert [r.run_id for r in store.list_runs(ACC)] == [first.run_id]

    @pytest.mark.parametrize("_repeat", range(5))
    def test_two_stores_migrating_at_once_both_succeed(self, stores, _repeat):
        first, second = stores(), stores()
        assert first.schema_version() == 0
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def migrate(store):
            start.wait()
            try:
                store.migrate()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert first.schema_version() == second.schema_version() == SCHEMA_VERSION

    def test_a_newer_schema_is_refused(self, store):
        with store._transaction(write=True) as execute:
            execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (SCHEMA_VERSION + 1, "x")
            )
        with pytest.raises(AuditSchemaError, match=f"version {SCHEMA_VERSION + 1}"):
            store.migrate()

    def test_using_a_store_before_migrate_is_an_error_not_unavailability(self, stores):
        with pytest.raises(AuditStoreError) as caught:
            stores().list_runs(ACC)
        assert not isinstance(caught.value, AuditStoreUnavailableError)

    @pytest.mark.parametrize(
        "table",
        [audit_sql._RUNS, audit_sql._DISCREPANCIES, audit_sql._BREAKS, audit_sql._CORRECTIONS],
        ids=lambda table: table.name,
    )
    def test_each_tables_column_list_is_its_schema(self, store, table):
        """Every column is written and read back: none is left to its default by an INSERT."""
        store.list_accounts()  # connects
        described = store._connection.execute(f"SELECT * FROM {table.name} LIMIT 0").description  # noqa: S608

        assert [column[0] for column in described] == list(table.columns)


class TestRecordRun:
    def test_a_run_round_trips_exactly(self, store):
        oslo = dt.timezone(dt.timedelta(hours=1))
        result = ReconciliationResult(
            run_id=uuid.uuid4(),
            account_id=ACC,
            timestamp=dt.datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=oslo),
            discrepancies=(
                quantity("AAPL", "100.250", "1.5E+2"),
                quantity("BRK.A", "-0.000000001", "12345678901234567890.123456789"),
                cash("1000.00", "987.65"),
            ),
            positions_checked=12,
            duration_ms=3.2,
            context={"trigger": "post_fill", "order_id": "ORD-1", "fill_id": "F-1", "symbol": "AAPL"},
            netted=(NettedSymbol(side="broker", symbol="AAPL", entries=2),),
        )
        record(store, BreakTracker(), result)
        (recorded,) = store.list_runs(ACC)
        assert recorded.to_result() == result

    def test_decimals_keep_their_exact_digits(self, store):
        result = run(0, quantity("AAPL", "100.250", "1.5E+2"))
        record(store, BreakTracker(), result)
        (recorded,) = store.list_runs(ACC)
        (discrepancy,) = recorded.discrepancies
        assert (str(discrepancy.discrepancy.local_value), str(discrepancy.discrepancy.broker_value)) == (
            "100.250",
            "1.5E+2",
        )

    def test_times_come_back_in_utc_to_the_microsecond(self, store):
        eastern = dt.timezone(dt.timedelta(hours=-5))
        when = dt.datetime(2026, 3, 1, 4, 0, 0, 654321, tzinfo=eastern)
        result = ReconciliationResult(run_id=uuid.uuid4(), account_id=ACC, timestamp=when)
        record(store, BreakTracker(), result)
        (recorded,) = store.list_runs(ACC)
        assert recorded.timestamp == when
        assert recorded.timestamp.utcoffset() == dt.timedelta(0)
        assert recorded.timestamp.microsecond == 654321

    def test_each_discrepancy_is_recorded_with_its_age_and_escalated_severity(self, store):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=2))
        record(store, tracker, run(0, cash()))
        second = run(5, cash())
        update = record(store, tracker, second)
        latest = store.list_runs(ACC, limit=1)[0]
        (recorded,) = latest.discrepancies
        assert (recorded.discrepancy.severity, recorded.severity) == (WARNING, CRITICAL)
        assert (recorded.first_seen, recorded.consecutive_runs) == (at(0), 2)
        assert recorded.break_id == update.state_of(cash()).break_id

    def test_a_failed_run_is_recorded_with_its_error(self, store):
        failed = run(
            0, error="broker timed out after 30.0 s: ReadTimeout('slow')", context={"trigger": "periodic"}
        )
        record(store, BreakTracker(), failed)
        (recorded,) = store.list_runs(ACC)
        assert (recorded.status, recorded.error, recorded.is_clean) == (
            "failed",
            "broker timed out after 30.0 s: ReadTimeout('slow')",
            False,
        )
        assert recorded.context == {"trigger": "periodic"}
        assert recorded.discrepancies == ()

    def test_recording_a_run_twice_changes_nothing(self, store):
        tracker = BreakTracker()
        result = run(0, quantity(), cash())
        update = tracker.observe(result)
        store.record_run(result, update)
        store.record_run(result, update)
        (recorded,) = store.list_runs(ACC)
        assert len(recorded.discrepancies) == 2
        assert store.load_open_breaks(ACC) == sorted(update.breaks, key=lambda s: s.type.value)

    def test_an_ageing_update_of_another_run_is_refused(self, store):
        tracker = BreakTracker()
        update = tracker.observe(run(0, quantity()))
        with pytest.raises(ValueError, match="ageing update"):
            store.record_run(run(1, quantity()), update)
        assert store.list_runs(ACC) == []


class TestBreaks:
    def test_open_breaks_are_read_back_as_the_tracker_holds_them(self, store):
        tracker = BreakTracker(AgeingPolicy(halt_after_runs=2))
        record(store, tracker, run(0, quantity("AAPL"), cash()))
        record(store, tracker, run(5, quantity("AAPL"), quantity("MSFT"), cash()))
        expected = sorted(
            tracker.open_breaks(ACC), key=lambda s: (s.first_seen, s.type.value, s.symbol or "")
        )
        assert store.load_open_breaks(ACC) == expected

    def test_ageing_survives_a_restart_through_the_store(self, store, stores):
        policy = AgeingPolicy(halt_after_runs=3)
        before = BreakTracker(policy)
        record(store, before, run(0, quantity()))
        record(store, before, run(5, quantity()))
        store.close()
        reopened = stores()
        after = BreakTracker(policy, reopened.load_open_breaks(ACC))
        update = record(reopened, after, run(10, quantity()))
        state = update.state_of(quantity())
        assert (state.first_seen, state.consecutive_runs) == (at(0), 3)
        assert update.halts == (state,)

    def test_a_fired_kill_switch_is_remembered_across_a_restart(self, store):
        policy = AgeingPolicy(halt_after_runs=1)
        (halted,) = record(store, BreakTracker(policy), run(0, quantity())).halts
        after = BreakTracker(policy, store.load_open_breaks(ACC))
        assert record(store, after, run(5, quantity())).halts == ()
        assert store.load_open_breaks(ACC)[0].halted_run_id == halted.halted_run_id

    def test_a_resolved_break_is_no_longer_open(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, quantity()))
        clean = run(5)
        record(store, tracker, clean)
        assert store.load_open_breaks(ACC) == []
        (resolved,) = store.list_breaks(ACC, open_only=False)
        assert (resolved.resolved_at, resolved.resolved_run_id) == (at(5), clean.run_id)

    def test_a_break_that_comes_back_is_a_new_break(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, quantity()))
        record(store, tracker, run(5))
        record(store, tracker, run(10, quantity()))
        old, new = store.list_breaks(ACC, open_only=False)
        assert (old.is_open, new.is_open) == (False, True)
        assert (new.first_seen, new.consecutive_runs) == (at(10), 1)
        assert old.break_id != new.break_id

    def test_open_breaks_are_per_account(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, quantity(account="ACC-2"), account="ACC-2"))
        assert store.load_open_breaks(ACC) == []
        assert len(store.load_open_breaks("ACC-2")) == 1


class TestBoardReads:
    def test_accounts_with_a_run_or_a_break_are_listed_in_order(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, account="ACC-2"))
        record(store, tracker, run(1, quantity()))
        record(store, BreakTracker(), run(2, quantity(account="ACC-0"), account="ACC-0"))
        assert store.list_accounts() == ["ACC-0", ACC, "ACC-2"]

    def test_a_database_without_runs_lists_no_accounts(self, store):
        assert store.list_accounts() == []

    def test_a_break_is_found_by_its_id_open_or_resolved(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, quantity()))
        (opened,) = store.load_open_breaks(ACC)
        record(store, tracker, run(5))
        found = store.find_break(opened.break_id)
        assert found is not None
        assert (found.break_id, found.resolved_at) == (opened.break_id, at(5))

    def test_an_unknown_break_is_not_found(self, store):
        assert store.find_break(uuid.uuid4()) is None

    def test_a_breaks_history_lists_each_run_that_saw_it_oldest_first(self, store):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=2, escalate_to=CRITICAL))
        runs = [run(0, cash()), run(5, cash(broker="990.00")), run(10, cash(broker="980.00"))]
        for result in runs:
            record(store, tracker, result)
        (state,) = store.load_open_breaks(ACC)

        sightings = store.break_history(state.break_id)

        assert [s.run_id for s in sightings] == [r.run_id for r in runs]
        assert [s.consecutive_runs for s in sightings] == [1, 2, 3]
        assert [s.severity for s in sightings] == [WARNING, CRITICAL, CRITICAL]
        assert [s.broker_value for s in sightings] == [Decimal("987.65"), Decimal("990.00"), Decimal("980.00")]
        assert sightings[0].local_value == Decimal("1000.00")

    def test_a_breaks_history_is_limited_to_its_latest_runs(self, store):
        tracker = BreakTracker()
        results = [run(minutes, quantity()) for minutes in range(5)]
        for result in results:
            record(store, tracker, result)
        (state,) = store.load_open_breaks(ACC)

        assert [s.run_id for s in store.break_history(state.break_id, limit=2)] == [
            r.run_id for r in results[-2:]
        ]

    def test_a_database_without_the_audit_tables_says_so_in_one_message(self, stores):
        with pytest.raises(NoAuditTablesError, match="has no audit tables: no service with audit_store set"):
            stores().list_accounts()


class TestListing:
    def test_runs_are_listed_newest_first(self, store):
        tracker = BreakTracker()
        results = [run(m) for m in (0, 10, 5)]
        for result in results:
            record(store, tracker, result)
        assert [r.timestamp for r in store.list_runs(ACC)] == [at(10), at(5), at(0)]

    def test_runs_are_limited_to_the_latest(self, store):
        tracker = BreakTracker()
        for minute in range(5):
            record(store, tracker, run(minute, quantity()))
        latest = store.list_runs(ACC, limit=2)
        assert [r.timestamp for r in latest] == [at(4), at(3)]
        assert all(len(r.discrepancies) == 1 for r in latest)

    def test_runs_are_filtered_by_a_half_open_time_window(self, store):
        tracker = BreakTracker()
        for minute in range(5):
            record(store, tracker, run(minute))
        window = store.list_runs(ACC, since=at(1), until=at(3))
        assert [r.timestamp for r in window] == [at(2), at(1)]

    def test_runs_of_other_accounts_are_not_listed(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, account="ACC-2"))
        assert store.list_runs(ACC) == []

    def test_a_naive_time_filter_is_refused(self, store):
        with pytest.raises(ValueError, match="timezone-aware"):
            store.list_runs(ACC, since=dt.datetime(2026, 1, 1))  # noqa: DTZ001

    @pytest.mark.parametrize("limit", [0, -1, True])
    def test_an_invalid_limit_is_refused(self, store, limit):
        with pytest.raises(ValueError, match="limit"):
            store.list_runs(ACC, limit=limit)

    def test_breaks_are_filtered_by_type(self, store):
        record(store, BreakTracker(), run(0, quantity(), cash()))
        (found,) = store.list_breaks(ACC, open_only=True, types=[DiscrepancyType.CASH_MISMATCH])
        assert found.type is DiscrepancyType.CASH_MISMATCH

    def test_breaks_are_filtered_by_escalated_severity(self, store):
        tracker = BreakTracker(AgeingPolicy(escalate_after_runs=2))
        record(store, tracker, run(0, cash()))
        assert store.list_breaks(ACC, open_only=True, severities=[CRITICAL]) == []
        record(store, tracker, run(5, cash()))
        (found,) = store.list_breaks(ACC, open_only=True, severities=[CRITICAL])
        assert found.type is DiscrepancyType.CASH_MISMATCH

    def test_no_filter_values_mean_no_filter(self, store):
        record(store, BreakTracker(), run(0, quantity(), cash()))
        assert len(store.list_breaks(ACC, open_only=True, types=[], severities=[])) == 2

    def test_breaks_are_filtered_by_when_they_were_last_active(self, store):
        tracker = BreakTracker()
        record(store, tracker, run(0, quantity("AAPL"), quantity("MSFT")))
        record(store, tracker, run(5, quantity("MSFT")))
        record(store, tracker, run(10, quantity("MSFT")))
        assert [b.symbol for b in store.list_breaks(ACC, open_only=False, since=at(6))] == ["MSFT"]
        assert [b.symbol for b in store.list_breaks(ACC, open_only=False, since=at(5))] == ["AAPL", "MSFT"]

    def test_breaks_seen_together_are_ordered_by_type_then_symbol(self, store):
        record(store, BreakTracker(), run(0, quantity("MSFT"), quantity("AAPL"), cash()))
        kinds = [(b.type, b.symbol) for b in store.list_breaks(ACC, open_only=True)]
        assert kinds == [
            (DiscrepancyType.CASH_MISMATCH, None),
            (DiscrepancyType.QUANTITY_MISMATCH, "AAPL"),
            (DiscrepancyType.QUANTITY_MISMATCH, "MSFT"),
        ]


class TestSqliteFaults:
    def test_the_database_is_in_wal_mode(self, tmp_path):
        path = tmp_path / "audit.db"
        store = open_store(path)
        store.migrate()
        store.close()
        with contextlib.closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_a_locked_database_raises_unavailable_instead_of_hanging(self, tmp_path):
        path = tmp_path / "audit.db"
        store = open_store(path, timeout_seconds=0.2)
        store.migrate()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        try:
            with pytest.raises(AuditStoreUnavailableError, match="locked"):
                record(store, BreakTracker(), run(0, quantity()))
            assert time.monotonic() - started < 5
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        store.close()

    def test_a_store_catches_up_once_the_lock_is_released(self, tmp_path):
        path = tmp_path / "audit.db"
        store = open_store(path, timeout_seconds=0.2)
        store.migrate()
        result = run(0, quantity())
        update = BreakTracker().observe(result)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(AuditStoreUnavailableError):
            store.record_run(result, update)
        holder.execute("ROLLBACK")
        holder.close()
        store.record_run(result, update)
        assert [r.run_id for r in store.list_runs(ACC)] == [result.run_id]
        store.close()

    def test_a_directory_that_does_not_exist_is_unavailable(self, tmp_path):
        store = open_store(tmp_path / "missing" / "audit.db")
        with pytest.raises(AuditStoreUnavailableError, match="unable to open"):
            store.migrate()


@pytest.mark.postgres
class TestPostgresFaults:
    def test_a_server_that_does_not_answer_raises_unavailable(self):
        pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
        store = open_store("postgresql://postgres@127.0.0.1:1/test", timeout_seconds=1)
        with pytest.raises(AuditStoreUnavailableError, match=re.escape("127.0.0.1:1/test")):
            store.migrate()

    def test_a_locked_table_raises_unavailable_instead_of_hanging(self, postgres_url):
        import psycopg  # noqa: PLC0415

        store = open_store(postgres_url, timeout_seconds=0.3)
        store.migrate()
        holder = psycopg.connect(postgres_url)
        holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        try:
            with pytest.raises(AuditStoreUnavailableError):
                record(store, BreakTracker(), run(0, quantity()))
            assert time.monotonic() - started < 5
        finally:
            holder.rollback()
            holder.close()
            store.close()

    def test_a_store_reconnects_after_its_connection_was_killed(self, postgres_url):
        import psycopg  # noqa: PLC0415

        store = open_store(postgres_url)
        store.migrate()
        (pid,) = store._connection.execute("SELECT pg_backend_pid()").fetchone()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(AuditStoreUnavailableError):
            store.list_runs(ACC)
        result = run(0)
        record(store, BreakTracker(), result)
        assert [r.run_id for r in store.list_runs(ACC)] == [result.run_id]
        store.close()


class TestOpenStore:
    def test_a_bare_path_is_a_sqlite_file(self, tmp_path):
        store = open_store(str(tmp_path / "a.db"))
        assert isinstance(store, SqliteAuditStore)
        assert store.path == str(tmp_path / "a.db")

    def test_a_path_object_is_a_sqlite_file(self, tmp_path):
        store = open_store(tmp_path / "a.db")
        assert isinstance(store, SqliteAuditStore)
        assert store.path == str(tmp_path / "a.db")

    def test_a_sqlite_url_with_three_slashes_is_relative(self):
        store = open_store("sqlite:///var/audit.db")
        assert isinstance(store, SqliteAuditStore)
        assert store.path == "var/audit.db"

    def test_a_sqlite_url_with_four_slashes_is_absolute(self):
        assert open_store("sqlite:////var/lib/audit.db").path == "/var/lib/audit.db"

    @pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/audit.db"])
    def test_a_sqlite_url_without_a_path_is_refused(self, url):
        with pytest.raises(ValueError, match="sqlite URL"):
            open_store(url)

    @pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db"])
    def test_a_postgres_url_is_a_postgres_store(self, url):
        pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
        assert isinstance(open_store(url), PostgresAuditStore)

    def test_an_unknown_scheme_is_refused(self):
        with pytest.raises(ValueError, match="mysql"):
            open_store("mysql://u@h/db")

    def test_opening_touches_nothing(self, tmp_path):
        open_store(tmp_path / "a.db")
        assert not Path(tmp_path / "a.db").exists()


class TestAssetTypesAndCurrencies:
    def test_an_option_break_round_trips_with_its_asset_type(self, store):
        option = attrs.evolve(quantity("AAPL  260116C00190000"), asset_type=AssetType.OPTION)
        result = run(
            0, option, netted=(NettedSymbol("broker", "AAPL  260116C00190000", 2, AssetType.OPTION),)
        )

        record(store, BreakTracker(), result)

        (recorded,) = store.list_runs(ACC)
        assert recorded.to_result() == result
        assert [b.asset_type for b in store.load_open_breaks(ACC)] == [AssetType.OPTION]

    def test_a_stock_and_an_option_on_one_symbol_are_two_open_breaks(self, store):
        tracker = BreakTracker()
        option = attrs.evolve(quantity(), asset_type=AssetType.OPTION)

        record(store, tracker, run(0, quantity(), option))

        assert sorted(b.asset_type.value for b in store.load_open_breaks(ACC)) == ["option", "stock"]

    def test_each_currency_of_cash_is_its_own_open_break(self, store):
        eur, usd = attrs.evolve(cash(), currency="EUR"), attrs.evolve(cash(), currency="USD")

        record(store, BreakTracker(), run(0, eur, usd))

        assert sorted(b.currency for b in store.load_open_breaks(ACC)) == ["EUR", "USD"]
        (recorded,) = store.list_runs(ACC)
        assert [d.discrepancy.currency for d in recorded.discrepancies] == ["EUR", "USD"]

    def test_ageing_of_a_per_currency_break_survives_a_restart(self, store, stores):
        eur = attrs.evolve(cash(), currency="EUR")
        record(store, BreakTracker(), run(0, eur))

        after = BreakTracker(AgeingPolicy(), stores().load_open_breaks(ACC))

        assert record(store, after, run(5, eur)).state_of(eur).consecutive_runs == 2


class TestMigrationToAssetTypes:
    """A store written before positions had asset types (schema version 1)."""

    @pytest.fixture
    def version_1(self, stores, monkeypatch):
        monkeypatch.setattr(audit_sql, "MIGRATIONS", audit_sql.MIGRATIONS[:1])
        monkeypatch.setattr(audit_sql, "SCHEMA_VERSION", 1)
        store = stores()
        store.migrate()
        first_run, break_id = uuid.uuid4(), uuid.uuid4()
        with store._transaction(write=True) as execute:
            execute(
                "INSERT INTO runs (run_id, account_id, run_at, status, error, positions_checked, duration_ms,"
                " context, netted, discrepancy_count) VALUES (?, ?, ?, 'ok', NULL, 1, 1.0, '{}', ?, 2)",
                (
                    str(first_run),
                    ACC,
                    audit_sql.to_text(at(0)),
                    '[{"side": "local", "symbol": "AAPL", "entries": 2}]',
                ),
            )
            for ordinal, (kind, symbol, value) in enumerate(
                [("quantity_mismatch", "AAPL", "100"), ("cash_mismatch", None, "1000.00")]
            ):
                execute(
                    "INSERT INTO discrepancies (run_id, ordinal, account_id, discrepancy_type, symbol, severity,"
                    " aged_severity, local_value, broker_value, observed_at, break_id, first_seen,"
                    " consecutive_runs) VALUES (?, ?, ?, ?, ?, 'critical', 'critical', ?, '150', ?, ?, ?, 1)",
                    (
                        str(first_run),
                        ordinal,
                        ACC,
                        kind,
                        symbol,
                        value,
                        audit_sql.to_text(at(0)),
                        str(break_id if symbol else uuid.uuid4()),
                        audit_sql.to_text(at(0)),
                    ),
                )
            execute(
                "INSERT INTO breaks (break_id, account_id, discrepancy_type, symbol, severity, local_value,"
                " broker_value, first_seen, last_seen, consecutive_runs, first_run_id, last_run_id)"
                " VALUES (?, ?, 'quantity_mismatch', 'AAPL', 'critical', '100', '150', ?, ?, 1, ?, ?)",
                (
                    str(break_id),
                    ACC,
                    audit_sql.to_text(at(0)),
                    audit_sql.to_text(at(0)),
                    str(first_run),
                    str(first_run),
                ),
            )
        monkeypatch.undo()
        return store

    def test_migrating_gives_the_positions_recorded_before_the_stock_asset_type(self, version_1):
        version_1.migrate()

        (open_break,) = version_1.load_open_breaks(ACC)
        (recorded,) = version_1.list_runs(ACC)
        assert version_1.schema_version() == SCHEMA_VERSION
        assert open_break.asset_type is AssetType.STOCK
        assert [(d.discrepancy.asset_type, d.discrepancy.currency) for d in recorded.discrepancies] == [
            (AssetType.STOCK, None),
            (None, None),
        ]
        assert recorded.netted == (NettedSymbol("local", "AAPL", 2, AssetType.STOCK),)

    def test_a_break_recorded_before_the_migration_keeps_ageing_after_it(self, version_1):
        version_1.migrate()
        tracker = BreakTracker(AgeingPolicy(), version_1.load_open_breaks(ACC))

        state = record(version_1, tracker, run(5, quantity())).state_of(quantity())

        assert (state.first_seen, state.consecutive_runs) == (at(0), 2)
