"""Fuzzing what comes from outside: broker answers and config values.

Whatever a broker answers, raises or does, every run is reported and published, its
error text stays bounded, nothing escapes to the caller, no thread of ours dies, and
health says so truthfully. Whatever a config is given, it is built or refused with a
TypeError or ValueError whose message is bounded — never anything else.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import attrs
import hypothesis.strategies as st
from helpers import eventually
from hypothesis import HealthCheck, given, settings

from reconciliation import BrokerPosition, ComponentState, ReconciliationConfig
from reconciliation._domain.error_text import MAX_ERROR_TEXT

HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), min_size=1, max_size=10),
    st.sampled_from(["\x1b]52;c;aGVsbG8=\x07", "\u202eAAPL", "A" * 5_000, "", "   ", "AAPL"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("1E+999999999"), Decimal("1E-999999999"), Decimal("-0"), Decimal("sNaN"), 10**400]),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


class Hostile:
    """An object whose attribute reads go wrong: a look-alike entry from a broken SDK."""

    def __init__(self, raised: BaseException) -> None:
        self._raised = raised

    @property
    def symbol(self) -> str:
        raise self._raised

    def __repr__(self) -> str:
        raise self._raised


RAISED = st.sampled_from(
    [
        ConnectionError("gateway down"),
        SystemExit(3),
        KeyboardInterrupt(),
        GeneratorExit(),
        RecursionError("deep"),
        MemoryError(),
        ValueError("x" * 100_000),
    ]
)
ENTRY = st.one_of(
    st.builds(
        lambda symbol, quantity, cost: BrokerPosition(symbol, quantity, cost, Decimal(0)),
        st.sampled_from(["AAPL", "MSFT", "BTC/USD"]),
        st.integers(-1000, 1000),
        st.integers(1, 1000),
    ),
    st.fixed_dictionaries(
        {"symbol": HOSTILE_TEXT, "quantity": NUMBERS, "avg_cost": NUMBERS, "market_value": NUMBERS},
        optional={"asset_type": st.one_of(st.text(max_size=8), st.none(), st.integers())},
    ),
    st.dictionaries(st.text(max_size=8), NUMBERS, max_size=4),
    RAISED.map(Hostile),
    st.none(),
    NUMBERS,
)
ANSWER = st.one_of(
    st.lists(ENTRY, max_size=6),
    st.sampled_from([None, "[]", b"[]", {}, 0, (x for x in ())]),
)
BEHAVIOUR = st.one_of(
    st.tuples(st.just("return"), ANSWER),
    st.tuples(st.just("raise"), RAISED),
    st.tuples(st.just("delay"), st.floats(min_value=0.0, max_value=0.15)),
)


def our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("reconciliation", "Delivery", "Scheduler"))]


def test_whatever_a_broker_answers_every_run_is_reported_published_and_nothing_escapes(
    harness_factory: Any,
) -> None:
    harness = harness_factory(broker_timeout_seconds=0.1)
    harness.start()
    seen: list[int] = []

    @settings(
        max_examples=600,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(positions=BEHAVIOUR, account=BEHAVIOUR)
    def one_run(positions: tuple[str, Any], account: tuple[str, Any]) -> None:
        for call, (kind, value) in (("get_positions", positions), ("get_account", account)):
            if kind == "return":
                harness.broker.then_return(value, call=call)
            elif kind == "raise":
                harness.broker.then_raise(value, call=call)
            else:
                harness.broker.then_delay(value, call=call)
        result = harness.reconcile()
        assert result.status in {"ok", "failed"}
        if result.error is not None:
            assert isinstance(result.error, str)
            assert len(result.error) <= MAX_ERROR_TEXT + 100
        assert harness.capture.results[-1]["run_id"] == str(result.run_id)
        states = {c.state for c in harness.service.health().components.values()}
        assert ComponentState.STOPPED not in states
        seen.append(len(our_threads()))

    one_run()
    assert harness.service.is_running
    assert max(seen) <= 20, f"threads grew to {max(seen)}"
    health = harness.service.health()
    assert all(c.state is not ComponentState.STOPPED for c in health.components.values())


def test_whatever_an_async_broker_answers_every_run_is_reported_and_the_loop_lives(harness_factory: Any) -> None:
    harness = harness_factory(asynchronous=True, broker_timeout_seconds=0.1)
    harness.start()

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(positions=BEHAVIOUR)
    def one_run(positions: tuple[str, Any]) -> None:
        kind, value = positions
        if kind == "return":
            harness.broker.then_return(value)
        elif kind == "raise":
            harness.broker.then_raise(value)
        else:
            harness.broker.then_delay(value)
        result = harness.reconcile()
        assert result.status in {"ok", "failed"}
        assert harness.capture.results[-1]["run_id"] == str(result.run_id)

    one_run()
    harness.broker.positions = []
    deadline_runs = [harness.reconcile() for _ in range(3)]
    assert deadline_runs[-1].status == "ok"


CONFIG_VALUES = st.one_of(
    NUMBERS,
    st.just(float("nan")),
    st.just(10**100),
    st.just(-1),
    st.text(max_size=5),
    st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=2),
    st.just(dt.datetime(2026, 1, 1)),  # noqa: DTZ001 - a naive datetime is among the hostile values
)
CONFIG_FIELDS = [field.name for field in attrs.fields(ReconciliationConfig) if field.name != "account_id"]


@settings(max_examples=2_000, deadline=None)
@given(
    account=st.one_of(HOSTILE_TEXT, NUMBERS),
    options=st.dictionaries(st.sampled_from(CONFIG_FIELDS), CONFIG_VALUES, max_size=4),
)
def test_a_config_is_built_or_refused_with_a_bounded_type_or_value_error(
    account: object, options: dict[str, object]
) -> None:
    refused = _refusal(lambda: ReconciliationConfig(account, **options))  # type: ignore[arg-type]
    assert refused is None or len(str(refused)) <= 2_000


def _refusal(build: Any) -> Exception | None:
    """The TypeError or ValueError `build()` raised, None if it built; anything else escapes."""
    try:
        build()
    except (TypeError, ValueError) as refused:
        return refused
    return None


def test_the_runs_of_the_fuzzed_broker_left_no_thread_behind(harness_factory: Any) -> None:
    before = set(threading.enumerate())
    harness = harness_factory(broker_timeout_seconds=0.1)
    harness.start()
    for raised in (SystemExit(1), KeyboardInterrupt(), MemoryError()):
        harness.broker.then_raise(raised)
        assert harness.reconcile().status == "failed"
    harness.stop()
    eventually(lambda: not set(our_threads()) - before, what="every thread of the service ended")
