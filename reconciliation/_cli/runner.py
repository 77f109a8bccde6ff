"""The standalone runner: one `ReconciliationService` per account, from a TOML file.

`load_config` reads and checks the whole file before anything starts, and refuses it
with one `ConfigError` that lists every mistake, each naming its key
(`accounts[1].interval_seconds: ...`); cattrs structures each table into the attrs class
that is its only description (`ReconciliationConfig`, an adapter's `Settings`).
`run_until_stopped` starts every service, waits for SIGINT or SIGTERM, and stops them
all. The format is documented in docs/configuration.md; docs/example-config.toml is
a complete example.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import logging
import os
import signal
import sys
import tomllib
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import attrs
import cattrs
from cattrs.cols import is_mapping

from reconciliation._cli.main import ExitCode
from reconciliation._domain.error_text import shown, unknown_key
from reconciliation._domain.models import CorrectionLimits, ReconciliationConfig
from reconciliation._domain.values import FieldError
from reconciliation._publishing.runtime_names import NameInUseError
from reconciliation._runtime.accounts import Account
from reconciliation._runtime.health import ComponentState
from reconciliation._runtime.journal import JournalError
from reconciliation._runtime.runtime import DEFAULT_LEASE_SECONDS, check_lease_seconds, check_runtime_name
from reconciliation._runtime.service import ReconciliationRuntime

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import redis

    from reconciliation.metrics import ReconciliationMetrics

__all__ = [
    "ADAPTERS",
    "AccountSpec",
    "ConfigError",
    "RunnerConfig",
    "StartError",
    "config_from_table",
    "load_config",
    "read_toml",
    "resolve_factory",
    "run_until_stopped",
]

logger = logging.getLogger(__name__)

_TOP_LEVEL = ("redis_url", "state_dir", "runtime_name", "lease_seconds", "defaults", "accounts", "correction_limits")
_BOOKS = ("broker", "portfolio", "broker_adapter")
"""Where an account's two books come from: factories, or a broker adapter's table instead of `broker`."""
_CONFIG_KEYS = tuple(attrs.fields_dict(ReconciliationConfig))
_ACCOUNT_KEYS = (*_CONFIG_KEYS, *_BOOKS)
_DEFAULT_KEYS = tuple(key for key in _ACCOUNT_KEYS if key != "account_id")

ADAPTERS: Mapping[str, str] = {
    "ccxt": "reconciliation.adapters.ccxt",
    "alpaca": "reconciliation.adapters.alpaca",
    "ib": "reconciliation.adapters.ib",
}
"""The broker adapters an `[accounts.broker_adapter]` table can name (`adapter = "ccxt"`): each
name, also that of its extra, to its module. The module's frozen attrs `Settings` is the rest of
the table, and makes the broker (`broker(account_id)`) when the service starts; its `SDK` is
imported when the file is read, so a missing extra is a configuration error. A new adapter is
its module, its extra and one entry here."""


class ConfigError(Exception):
    """The configuration file is unusable: each argument is one mistake, naming its key and what is wrong."""

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(str(problem) for problem in self.args)

    def __str__(self) -> str:
        return "\n".join(self.problems)


class StartError(Exception):
    """A service could not be built or started; the message says which and why."""


Factory = Callable[[str], Any]


@attrs.frozen
class AccountSpec:
    """One account to reconcile: its config and where its two books come from."""

    config: ReconciliationConfig
    broker: str
    portfolio: str
    broker_factory: Factory = attrs.field(eq=False, repr=False)
    portfolio_factory: Factory = attrs.field(eq=False, repr=False)


@attrs.frozen
class RunnerConfig:
    redis_url: str | None
    accounts: tuple[AccountSpec, ...]
    correction_limits: CorrectionLimits | None = None
    """What all the accounts' corrections may apply together (`[correction_limits]`)."""
    runtime_name: str | None = None
    """The name this process holds its accounts' leases under (`runtime_name`, or `run --name`)."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS


def resolve_factory(path: str) -> Factory:
    """The callable named by `package.module:factory` (or `module:Class.method`).

    Raises:
        ValueError: the path is malformed or cannot be imported.
        TypeError: it names something that is not callable.
    """
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        msg = f"{path!r} is not a 'module:factory' import path"
        raise ValueError(msg)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import {module_name!r} (from {path!r}): {exc}"
        raise ValueError(msg) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            msg = f"{module_name!r} has no {attribute!r} (from {path!r})"
            raise ValueError(msg) from None
    if not callable(target):
        msg = f"{path!r} names a {type(target).__name__}, not a callable factory"
        raise TypeError(msg)
    factory: Factory = target
    return factory


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at `path`, parsed.

    Raises:
        ConfigError: it cannot be read, or it is not TOML.
    """
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path} is not valid TOML: {exc}"
        raise ConfigError(msg) from None


def load_config(path: Path) -> RunnerConfig:
    """Read and check the runner's TOML file.

    Raises:
        ConfigError: anything wrong, every mistake with the key it is about; nothing has started.
    """
    document = read_toml(path)
    problems = _Problems()
    _unknown_keys(problems, document, _TOP_LEVEL, "the top level")
    redis_url = document.get("redis_url")
    if redis_url is not None and (not isinstance(redis_url, str) or not redis_url.strip()):
        problems.add("redis_url", f"expected a Redis URL string, got {_describe(redis_url)}")
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.add("defaults", f"expected a table [defaults], got {_describe(defaults)}")
        defaults = {}
    if "state_dir" in document:
        if "state_dir" in defaults:
            problems.add("state_dir", "given both at the top level and in [defaults]: keep one")
        defaults = {**defaults, "state_dir": document["state_dir"]}
    _unknown_keys(problems, defaults, _DEFAULT_KEYS, "[defaults]", where="defaults")
    accounts = document.get("accounts")
    if not isinstance(accounts, list) or not accounts:
        problems.add("accounts", "expected at least one [[accounts]] table with an account_id")
        accounts = []
    specs: list[AccountSpec] = []
    seen: set[str] = set()
    for index, account in enumerate(accounts):
        where = f"accounts[{index}]"
        if not isinstance(account, dict):
            problems.add(where, f"expected an [[accounts]] table, got {_describe(account)}")
            continue
        _unknown_keys(problems, account, _ACCOUNT_KEYS, f"[[accounts]] #{index + 1}", where=where)
        known = {key: value for key, value in {**defaults, **account}.items() if key in _ACCOUNT_KEYS}
        spec = _account(problems, where, known, in_defaults=set(defaults) - set(account))
        if spec is None:
            continue
        if spec.config.account_id in seen:
            problems.add(f"{where}.account_id", f"account {spec.config.account_id!r} is configured twice")
        seen.add(spec.config.account_id)
        specs.append(spec)
    limits = _limits(problems, document.get("correction_limits"))
    runtime_name, lease_seconds = _lease_settings(problems, document)
    problems.raise_any()
    return RunnerConfig(
        redis_url=redis_url,
        accounts=tuple(specs),
        correction_limits=limits,
        runtime_name=runtime_name,
        lease_seconds=lease_seconds,
    )


def _lease_settings(problems: _Problems, document: Mapping[str, Any]) -> tuple[str | None, float]:
    """The top level's `runtime_name` and `lease_seconds`, after recording what is wrong with them."""
    runtime_name, lease_seconds = None, DEFAULT_LEASE_SECONDS
    try:
        runtime_name = check_runtime_name(document.get("runtime_name"))
    except (TypeError, ValueError) as exc:
        problems.add("runtime_name", str(exc))
    try:
        lease_seconds = check_lease_seconds(document.get("lease_seconds", DEFAULT_LEASE_SECONDS))
    except (TypeError, ValueError) as exc:
        problems.add("lease_seconds", str(exc))
    return runtime_name, lease_seconds


def _limits(problems: _Problems, table: object) -> CorrectionLimits | None:
    """The `[correction_limits]` of the whole runtime, if given; else None, after recording why not."""
    if table is None:
        return None
    try:
        return _CONVERTER.structure(table, CorrectionLimits)
    except cattrs.BaseValidationError as error:
        for steps, problem in _mistakes(error, table if isinstance(table, dict) else {}):
            problems.add(".".join(("correction_limits", *steps)), problem)
    return None


def config_from_table(table: Mapping[str, Any], *, where: str, ignore: tuple[str, ...] = ()) -> ReconciliationConfig:
    """A `ReconciliationConfig` from a TOML table of its options, checked as `load_config`
    checks an [[accounts]] table (`where` names the table in the messages); the keys in
    `ignore` belong to the caller.

    Raises:
        ConfigError: every mistake, each naming its key.
    """
    problems = _Problems()
    _unknown_keys(problems, table, (*_CONFIG_KEYS, *ignore), where or "the top level")
    options = {key: value for key, value in table.items() if key in _CONFIG_KEYS}
    config = _config(problems, where, options, lambda key: key)
    problems.raise_any()
    assert config is not None  # noqa: S101 - _config records a problem whenever it returns None
    return config


class _Problems:
    """Every mistake found in the file, in the order found, each once."""

    def __init__(self) -> None:
        self._found: dict[str, None] = {}

    def add(self, key: str, problem: str) -> None:
        self._found[f"{key}: {problem}"] = None

    def raise_any(self) -> None:
        if self._found:
            raise ConfigError(*self._found)


def _account(
    problems: _Problems, where: str, merged: dict[str, Any], *, in_defaults: set[str]
) -> AccountSpec | None:
    """The account's spec, or None after recording each of its mistakes."""

    def key_path(key: str) -> str:
        return f"defaults.{key}" if key in in_defaults else f"{where}.{key}"

    books = _books(problems, where, merged, in_defaults, key_path)
    config = _config(problems, where, {key: value for key, value in merged.items() if key not in _BOOKS}, key_path)
    if config is None or books.keys() != {"broker", "portfolio"}:
        return None
    broker, broker_factory = books["broker"]
    portfolio, portfolio_factory = books["portfolio"]
    return AccountSpec(config, broker, portfolio, broker_factory, portfolio_factory)


def _config(
    problems: _Problems, where: str, options: Mapping[str, Any], key_path: Callable[[str], str]
) -> ReconciliationConfig | None:
    """The account's config; else None, after recording every mistake in its options.

    cattrs reports every option of the wrong kind at once; the config's validators stop at
    the first they refuse, whose error names its field: that option is left out and the
    rest built again, until they pass.
    """
    remaining = dict(options)
    while True:
        try:
            config = _CONVERTER.structure(remaining, ReconciliationConfig)
        except cattrs.BaseValidationError as error:
            refused = set()
            for steps, problem in _mistakes(error, remaining):
                problems.add(".".join((key_path(steps[0]), *steps[1:])) if steps else where, problem)
                refused.add(steps[0] if steps else "")
            if "account_id" in refused or not refused <= remaining.keys():
                return None
            for key in refused:
                del remaining[key]
        else:
            return config if remaining == options else None


def _books(
    problems: _Problems,
    where: str,
    merged: dict[str, Any],
    in_defaults: set[str],
    key_path: Callable[[str], str],
) -> dict[str, tuple[str, Factory]]:
    """Where the account's broker and portfolio come from: a description and a factory each,
    or the mistakes recorded in `problems`.

    A `broker_adapter` replaces the `broker` factory; an account's own key wins over one from
    [defaults]; both at one level is an error.
    """
    both = {"broker", "broker_adapter"} <= merged.keys()
    if both and ("broker" in in_defaults) == ("broker_adapter" in in_defaults):
        problems.add(key_path("broker_adapter"), "give either broker (a factory) or broker_adapter, not both")
    adapter = "broker_adapter" in merged and (
        "broker" not in merged or ("broker" in in_defaults and "broker_adapter" not in in_defaults)
    )
    books: dict[str, tuple[str, Factory]] = {}
    for key in ("broker", "portfolio"):
        book = (
            _adapter(problems, key_path("broker_adapter"), merged["broker_adapter"])
            if key == "broker" and adapter
            else _factory(problems, where, key, merged.get(key), key_path(key))
        )
        if book is not None:
            books[key] = book
    return books


def _factory(problems: _Problems, where: str, key: str, value: Any, path: str) -> tuple[str, Factory] | None:
    if value is None:
        problems.add(f"{where}.{key}", "missing: give a 'module:factory' import path here or in [defaults]")
    elif not isinstance(value, str):
        problems.add(path, f"expected a 'module:factory' string, got {_describe(value)}")
    else:
        try:
            return value, resolve_factory(value)
        except (TypeError, ValueError) as exc:
            problems.add(path, str(exc))
    return None


def _adapter(problems: _Problems, path: str, table: Any) -> tuple[str, Factory] | None:
    """The broker of an adapter's table (`ccxt`, `alpaca`, `ib`): its description and its factory."""
    if not isinstance(table, Mapping):
        problems.add(path, f'expected a table such as {{ adapter = "ccxt", venue = "binanceusdm", ... }}, got {_describe(table)}')
        return None
    name = table.get("adapter")
    if not isinstance(name, str) or name not in ADAPTERS:
        problems.add(f"{path}.adapter", f"expected one of {', '.join(map(repr, ADAPTERS))}, got {shown(name)}")
        return None
    adapter = importlib.import_module(ADAPTERS[name])
    try:
        importlib.import_module(adapter.SDK)
    except ImportError as exc:
        problems.add(f"{path}.adapter", f"the {name} adapter needs its SDK: pip install 'reconciliation[{name}]' ({exc})")
        return None
    try:
        settings = _CONVERTER.structure(
            {key: value for key, value in table.items() if key != "adapter"}, adapter.Settings
        )
    except cattrs.BaseValidationError as error:
        for steps, problem in _mistakes(error, table):
            problems.add(".".join((path, *steps)), problem)
        return None
    return str(settings), settings.broker


def _unknown_keys(
    problems: _Problems, table: Mapping[str, Any], known: tuple[str, ...], what: str, *, where: str = ""
) -> None:
    for key in table:
        if key not in known:
            problems.add(f"{where}.{key}" if where else key, unknown_key(key, known, what))


def _mistakes(error: BaseException, table: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """Each mistake in a cattrs error (a tree of them, for a table of tables), with the keys that
    lead to it from `table`: unknown keys first, then the rest in the order of the fields."""
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        for key in table:
            if key in error.extra_fields:
                yield (key,), unknown_key(key, tuple(attrs.fields_dict(error.cl)))
    elif isinstance(error, cattrs.BaseValidationError):
        for inner in sorted(error.exceptions, key=lambda inner: not isinstance(inner, cattrs.ForbiddenExtraKeysError)):
            note = getattr(inner, "__notes__", [None])[-1]
            if isinstance(note, cattrs.AttributeValidationNote) and isinstance(inner, KeyError):
                yield (note.name,), f"missing: expected {_expected(note.type)}"
            elif isinstance(note, cattrs.AttributeValidationNote | cattrs.IterableValidationNote):
                key = note.name if isinstance(note, cattrs.AttributeValidationNote) else str(note.index)
                for steps, problem in _mistakes(inner, table.get(key)):
                    yield (key, *steps), problem
            else:
                yield from _mistakes(inner, table)
    elif isinstance(error, FieldError):
        yield (error.field,) if error.key is None else (error.field, error.key), str(error)
    else:
        yield (), str(error)


_PLAIN: Mapping[type, tuple[str, Callable[[object], bool]]] = {
    str: ("a non-empty string", lambda value: isinstance(value, str) and bool(value.strip())),
    bool: ("true or false", lambda value: isinstance(value, bool)),
    int: ("a whole number", lambda value: type(value) is int),
    float: ("a number of seconds", lambda value: type(value) in {int, float}),
}
"""What a TOML value must be for a field of each plain type (a float is a duration: money is a Decimal)."""

_MONEY = 'a number or a string of digits such as "1.00"'


def _expected(kind: object) -> str:
    if kind in _PLAIN:
        return _PLAIN[kind][0]  # type: ignore[index]
    if kind is Decimal:
        return _MONEY
    if _is_literal(kind):
        return " or ".join(map(repr, typing.get_args(kind)))
    return "a table"


def _is_literal(kind: object) -> bool:
    return typing.get_origin(kind) is Literal


def _plain(value: object, kind: Any) -> object:
    """Text, true or false, a number, or one of a `Literal`'s options, as its field's type says."""
    if not (value in typing.get_args(kind) if _is_literal(kind) else _PLAIN[kind][1](value)):
        msg = f"expected {_expected(kind)}, got {_describe(value)}"
        raise TypeError(msg)
    return value


def _money(value: object, _kind: object) -> Decimal:
    """An int, a string of digits (kept exactly), or a TOML float, taken as the digits written."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"expected {_MONEY}, got {_describe(value)}"
        raise TypeError(msg)
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        msg = f'expected a number such as "1.00", got {_describe(value)}'
        raise ValueError(msg) from None
    if not number.is_finite():
        msg = f"expected a finite number, got {_describe(value)}"
        raise ValueError(msg)
    return number


def _table(kind: Any, converter: cattrs.Converter) -> Callable[[object, object], object]:
    """A table (an attrs class, or a mapping such as currency = amount): cattrs' own hook, for a table only."""
    structure = converter.gen_structure_attrs_fromdict(kind) if attrs.has(kind) else converter.gen_structure_mapping(kind)

    def table(value: object, _kind: object) -> object:
        if not isinstance(value, Mapping):
            msg = f"expected a table, got {_describe(value)}"
            raise TypeError(msg)
        return structure(value, kind)

    return table


def _read_by_the_model(kind: object) -> bool:
    """Enums, and collections or options of them: the model's own converter reads their TOML text
    ("critical") and names the field when it refuses one."""
    return any(isinstance(part, type) and issubclass(part, enum.Enum) for part in (kind, *typing.get_args(kind)))


_CONVERTER = cattrs.Converter(forbid_extra_keys=True)
"""TOML to the attrs classes: a table's unknown key refused; a plain value checked for its
field's type here, then by the class's own converters and validators."""
_CONVERTER.register_structure_hook_factory(lambda kind: attrs.has(kind) or is_mapping(kind), _table)
for _kind in _PLAIN:
    _CONVERTER.register_structure_hook(_kind, _plain)
_CONVERTER.register_structure_hook_func(_is_literal, _plain)
_CONVERTER.register_structure_hook(Decimal, _money)
_CONVERTER.register_structure_hook_func(_read_by_the_model, lambda value, _kind: value)


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array"}
    return f"{kinds.get(type(value), 'a table' if isinstance(value, dict) else type(value).__name__)} {shown(value)}"


def build_runtime(config: RunnerConfig, client: redis.Redis | redis.RedisCluster) -> ReconciliationRuntime:
    """One runtime for every account, their books made by the configured factories.

    Raises:
        StartError: a factory raised, or returned something the service refuses.
    """
    accounts = []
    for spec in config.accounts:
        account_id = spec.config.account_id
        books = {}
        for key, path, factory in (
            ("broker", spec.broker, spec.broker_factory),
            ("portfolio", spec.portfolio, spec.portfolio_factory),
        ):
            try:
                books[key] = factory(account_id)
            except Exception as exc:
                msg = f"account {account_id}: the {key} factory {path} failed: {exc!r}"
                raise StartError(msg) from exc
        try:
            accounts.append(Account(spec.config, books["portfolio"], books["broker"]))
        except TypeError as exc:
            msg = f"account {account_id}: {exc}"
            raise StartError(msg) from exc
        except ValueError as exc:
            raise StartError(str(exc)) from exc
    try:
        return ReconciliationRuntime(
            accounts,
            client,
            correction_limits=config.correction_limits,
            name=config.runtime_name,
            lease_seconds=config.lease_seconds,
        )
    except (TypeError, ValueError) as exc:
        raise StartError(str(exc)) from exc


@attrs.define
class Readiness:
    """What `/healthz` of `reconciliation run` answers: ready (200) once every account's
    startup run has finished and while every component runs; 503 while starting, stopping,
    or when a component stopped (naming it)."""

    runtime: ReconciliationRuntime | None = None
    ready: bool = False
    stopping: bool = False

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        if self.stopping:
            return False, {"status": "stopping"}
        if self.runtime is None or not self.ready:
            return False, {"status": "starting", "detail": "the accounts' startup runs have not all finished"}
        health = self.runtime.health()
        stopped = sorted(
            name for name, component in health.components.items() if component.state is ComponentState.STOPPED
        )
        if stopped:
            return False, {"status": "failing", "stopped": stopped, "problems": list(health.problems)}
        return True, {"status": "ok", "accounts": len(self.runtime.accounts), "problems": list(health.problems)}


async def run_until_stopped(
    config: RunnerConfig,
    client: redis.Redis | redis.RedisCluster,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[], None] | None = None,
    metrics: ReconciliationMetrics | None = None,
    name: str | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Start every account together, wait for SIGINT/SIGTERM (or `stop`), stop them all.

    `metrics`, if given, watch the accounts from before their startup runs until they stop,
    `name` their `runtime` label (by default the account ids, joined). `readiness`, if
    given, is told of the runtime, of the end of its startup runs and of its stop (/healthz).

    A second SIGINT or SIGTERM while stopping ends the process at once (exit code 130),
    saying what was left: the operator asked twice.

    Raises:
        StartError: the accounts could not be built or started; whatever had started
            has been stopped again.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    runtime = build_runtime(config, client)
    if metrics is not None:
        metrics.watch(runtime, name=name)
    readiness = readiness or Readiness()
    readiness.runtime = runtime
    started = False
    try:
        await _start(runtime)
        started = readiness.ready = True
        if on_started is not None:
            on_started()
        await stop.wait()
    finally:
        readiness.ready, readiness.stopping = False, True
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_second_signal, signum)
        try:
            if started:
                report = await runtime.stop()
                logger.info("Stopped reconciling %d account(s)%s", len(runtime.accounts), "" if report.clean else " (see above)")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            if metrics is not None:
                metrics.unwatch(runtime)


async def _start(runtime: ReconciliationRuntime) -> None:
    """Start the accounts and say how each startup went (a standby account did not run here).

    Raises:
        StartError: they could not start (another live process runs under this name, say).
    """
    try:
        results = await runtime.start()
    except (JournalError, NameInUseError) as exc:
        raise StartError(str(exc)) from exc
    except Exception as exc:
        msg = f"the accounts did not start: {exc!r}"
        raise StartError(msg) from exc
    standby = runtime.health().standby
    logger.info(
        "Reconciling %d account(s): %s; stop with Ctrl-C or SIGTERM",
        len(runtime.accounts) - len(standby),
        ", ".join(a for a in runtime.accounts if a not in standby) or "none for now",
    )
    for account_id, why in standby.items():
        logger.info("%s is not reconciled here for now: %s", account_id, why)
    failed = [a for a, result in results.items() if result.error is not None and a not in standby]
    if failed:
        logger.warning("The startup run failed for %s (see above); they are retried periodically", ", ".join(failed))


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    logger.info("Received %s; stopping (send it again to exit at once)", signal.Signals(signum).name)
    stop.set()


def _on_second_signal(signum: int) -> None:
    """The operator asked twice: exit now, without waiting for what is still stopping."""
    logger.warning("Received %s again while stopping: exiting at once", signal.Signals(signum).name)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(ExitCode.INTERRUPTED)
