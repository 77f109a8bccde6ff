"""The standalone runner: one `ReconciliationService` per account, from a TOML file.

`load_config` reads and checks the whole file before anything starts, and refuses it
with one `ConfigError` that lists every mistake, each naming its key
(`accounts[1].interval_seconds: ...`).
`run_until_stopped` starts every service, waits for SIGINT or SIGTERM, and stops them
all. The format is documented in docs/configuration.md; docs/example-config.toml is
a complete example.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib
import logging
import os
import signal
import sys
import tomllib
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from reconciliation._cli.broker_adapters import AdapterConfigError, adapter_factory
from reconciliation._domain.models import ReconciliationConfig
from reconciliation._runtime.accounts import Account
from reconciliation._runtime.service import ReconciliationRuntime

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import redis

    from reconciliation.metrics import ReconciliationMetrics

__all__ = [
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

_TOP_LEVEL = ("redis_url", "defaults", "accounts")
_FACTORY_KEYS = ("broker", "portfolio")
_ADAPTER_KEY = "broker_adapter"
"""A table naming a broker adapter (docs/configuration.md), instead of a `broker` factory."""
_SECONDS = (
    "interval_seconds",
    "post_fill_delay_seconds",
    "broker_timeout_seconds",
    "post_fill_max_wait_seconds",
    "publish_retry_max_seconds",
)
_MONEY = ("cash_tolerance", "equity_tolerance_pct", "cost_tolerance_pct")
_COUNTS = ("stream_maxlen", "outbox_max_runs")
_NESTED_MONEY = frozenset({"max_notional"})
"""Amounts inside a sub-table, read like the top level's (`_decimal`)."""
_CONFIG_KEYS = tuple(field.name for field in attrs.fields(ReconciliationConfig))


def _nested_options() -> dict[str, type]:
    nested: dict[str, type] = {}
    for field in attrs.fields(attrs.resolve_types(ReconciliationConfig)):
        for kind in (field.type, *typing.get_args(field.type)):
            if isinstance(kind, type) and attrs.has(kind):
                nested[field.name] = kind
    return nested


_NESTED = _nested_options()
"""Options that are attrs classes themselves, or None (`ageing`, `correction`): a sub-table
of keyword arguments."""
_ACCOUNT_KEYS = (*_CONFIG_KEYS, *_FACTORY_KEYS, _ADAPTER_KEY)
_DEFAULT_KEYS = tuple(key for key in _ACCOUNT_KEYS if key != "account_id")


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
    _check_keys(problems, document, _TOP_LEVEL, "the top level")
    redis_url = document.get("redis_url")
    if redis_url is not None and (not isinstance(redis_url, str) or not redis_url.strip()):
        problems.add("redis_url", f"expected a Redis URL string, got {_describe(redis_url)}")
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.add("defaults", f"expected a table [defaults], got {_describe(defaults)}")
        defaults = {}
    _check_keys(problems, defaults, _DEFAULT_KEYS, "[defaults]", where="defaults")
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
        _check_keys(problems, account, _ACCOUNT_KEYS, f"[[accounts]] #{index + 1}", where=where)
        known = {key: value for key, value in {**defaults, **account}.items() if key in _ACCOUNT_KEYS}
        spec = _account(problems, where, known, in_defaults=set(defaults) - set(account))
        if spec is None:
            continue
        if spec.config.account_id in seen:
            problems.add(f"{where}.account_id", f"account {spec.config.account_id!r} is configured twice")
        seen.add(spec.config.account_id)
        specs.append(spec)
    problems.raise_any()
    return RunnerConfig(redis_url=redis_url, accounts=tuple(specs))


def config_from_table(table: Mapping[str, Any], *, where: str, ignore: tuple[str, ...] = ()) -> ReconciliationConfig:
    """A `ReconciliationConfig` from a TOML table of its options, checked as `load_config`
    checks an [[accounts]] table (`where` prefixes each key in the messages); the keys in
    `ignore` belong to the caller.

    Raises:
        ConfigError: every mistake, each naming its key.
    """
    problems = _Problems()
    _check_keys(problems, table, (*_CONFIG_KEYS, *ignore), where or "the top level")
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in _CONFIG_KEYS:
            with problems.collecting():
                options[key] = _convert(problems, key, key, value)
    config = _config(problems, where, options, lambda key: key)
    problems.raise_any()
    if config is None:  # pragma: no cover - _config records a problem whenever it returns None
        msg = f"{where}: not a configuration"
        raise ConfigError(msg)
    return config


class _Problems:
    """Every mistake found in the file, in the order found, each once."""

    def __init__(self) -> None:
        self._found: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._found)

    def add(self, key: str, problem: str) -> None:
        self._found[f"{key}: {problem}"] = None

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Record a `_fail` inside the block as one problem, and go on after the block."""
        try:
            yield
        except _MistakeError as problem:
            self._found[str(problem)] = None

    def raise_any(self) -> None:
        if self._found:
            raise ConfigError(*self._found)


def _account(
    problems: _Problems, where: str, merged: dict[str, Any], *, in_defaults: set[str]
) -> AccountSpec | None:
    """The account's spec, or None after recording each of its mistakes."""

    def key_path(key: str) -> str:
        return f"defaults.{key}" if key in in_defaults else f"{where}.{key}"

    found_before = len(problems)
    if "account_id" not in merged:
        problems.add(f"{where}.account_id", "missing: every [[accounts]] table needs an account_id")
    factories = _factories(problems, where, merged, in_defaults, key_path)
    options: dict[str, Any] = {}
    for key, value in merged.items():
        if key in _FACTORY_KEYS or key == _ADAPTER_KEY:
            continue
        with problems.collecting():
            options[key] = _convert(problems, key_path(key), key, value)
    config = _config(problems, where, options, key_path) if "account_id" in options else None
    if config is None or len(problems) > found_before:
        return None
    broker, broker_factory = factories["broker"]
    portfolio, portfolio_factory = factories["portfolio"]
    return AccountSpec(config, broker, portfolio, broker_factory, portfolio_factory)


def _factory(where: str, key: str, value: Any, path: str) -> tuple[str, Factory]:
    if value is None:
        _fail(f"{where}.{key}", "missing: give a 'module:factory' import path here or in [defaults]")
    if not isinstance(value, str):
        _fail(path, f"expected a 'module:factory' string, got {_describe(value)}")
    try:
        return value, resolve_factory(value)
    except (TypeError, ValueError) as exc:
        _fail(path, str(exc))


def _config(
    problems: _Problems, where: str, options: dict[str, Any], key_path: Callable[[str], str]
) -> ReconciliationConfig | None:
    """The account's config; else record why, blaming one option at a time until the rest are fine.

    `ReconciliationConfig` stops at its first invalid option: leaving that option out
    and building again finds the next one.
    """
    remaining = dict(options)
    while True:
        try:
            config = ReconciliationConfig(**remaining)
        except (TypeError, ValueError) as exc:
            blamed = next(
                (key for key in sorted(remaining, key=len, reverse=True) if str(exc).startswith(key)), None
            )
            problems.add(key_path(blamed) if blamed else where, str(exc))
            if blamed is None or blamed == "account_id":
                return None
            del remaining[blamed]
        else:
            return config if remaining == options else None


def _factories(
    problems: _Problems,
    where: str,
    merged: dict[str, Any],
    in_defaults: set[str],
    key_path: Callable[[str], str],
) -> dict[str, tuple[str, Factory]]:
    """Where the account's broker and portfolio come from: a description and a factory each,
    or the mistakes recorded in `problems`."""
    factories: dict[str, tuple[str, Factory]] = {}
    adapter = False
    with problems.collecting():
        adapter = _uses_adapter(merged, in_defaults, key_path)
        if adapter:
            try:
                factories["broker"] = adapter_factory(key_path(_ADAPTER_KEY), merged[_ADAPTER_KEY])
            except AdapterConfigError as exc:
                _fail(exc.key, exc.problem)
    for key in _FACTORY_KEYS:
        if key == "broker" and adapter:
            continue
        with problems.collecting():
            factories[key] = _factory(where, key, merged.get(key), key_path(key))
    return factories


def _uses_adapter(merged: dict[str, Any], in_defaults: set[str], key_path: Callable[[str], str]) -> bool:
    """Whether the broker comes from `broker_adapter` rather than a `broker` factory.

    An account's own key wins over one from [defaults]; both at one level is an error.
    """
    if _ADAPTER_KEY not in merged:
        return False
    if "broker" not in merged:
        return True
    adapter_from_defaults, factory_from_defaults = _ADAPTER_KEY in in_defaults, "broker" in in_defaults
    if adapter_from_defaults == factory_from_defaults:
        _fail(key_path(_ADAPTER_KEY), "give either broker (a factory) or broker_adapter, not both")
    return factory_from_defaults


def _convert(problems: _Problems, path: str, key: str, value: Any) -> Any:
    """A TOML value as `ReconciliationConfig` takes it; the config then validates it."""
    check = _CHECKS.get(key)
    if check is not None:
        return check(path, value)
    nested = _NESTED.get(key)
    if nested is not None:
        if not isinstance(value, dict):
            _fail(path, f"expected a table [{path}], got {_describe(value)}")
        known = tuple(field.name for field in attrs.fields(nested))
        _check_keys(problems, value, known, f"[{path}]", where=path)
        arguments = {
            name: _decimal(f"{path}.{name}", item) if name in _NESTED_MONEY and item is not None else item
            for name, item in value.items()
            if name in known
        }
        try:
            return nested(**arguments)
        except (TypeError, ValueError) as exc:
            _fail(path, str(exc))
    return value


def _text(path: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(path, f"expected a string, got {_describe(value)}")
    return value


def _flag(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"expected true or false, got {_describe(value)}")
    return value


def _seconds(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, f"expected a number of seconds, got {_describe(value)}")
    return value


def _count(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected a whole number, got {_describe(value)}")
    return value


def _table(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(path, f"expected a table of type = severity, got {_describe(value)}")
    return value


def _amounts(path: str, value: Any) -> dict[str, Decimal]:
    """A table of currency = amount, each amount read like `_decimal`."""
    if not isinstance(value, dict):
        _fail(path, f'expected a table of currency = amount such as EUR = "0.50", got {_describe(value)}')
    return {currency: _decimal(f"{path}.{currency}", amount) for currency, amount in value.items()}


def _decimal(path: str, value: Any) -> Decimal:
    """An int, a string of digits, or a TOML float taken as the digits written."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        _fail(path, f'expected a number or a string of digits such as "1.00", got {_describe(value)}')
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        _fail(path, f'expected a number such as "1.00", got {_describe(value)}')
    if not number.is_finite():
        _fail(path, f"expected a finite number, got {_describe(value)}")
    return number


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "account_id": _text,
    "enabled": _flag,
    "severity_overrides": _table,
    **dict.fromkeys(_SECONDS, _seconds),
    **dict.fromkeys(_COUNTS, _count),
    **dict.fromkeys(_MONEY, _decimal),
    "cash_tolerance_by_currency": _amounts,
}


def _check_keys(
    problems: _Problems, table: Mapping[str, Any], known: tuple[str, ...], what: str, *, where: str = ""
) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
            problems.add(f"{where}.{key}" if where else key, f"unknown key in {what}{hint}")


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array"}
    return (
        f"{kinds.get(type(value), 'a table' if isinstance(value, dict) else type(value).__name__)} {value!r}"
    )


class _MistakeError(Exception):
    """One mistake in the file, raised where it is found and collected by `_Problems`."""


def _fail(key: str, problem: str) -> NoReturn:
    msg = f"{key}: {problem}"
    raise _MistakeError(msg)


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
    try:
        return ReconciliationRuntime(accounts, client)
    except (TypeError, ValueError) as exc:
        raise StartError(str(exc)) from exc


SECOND_SIGNAL_EXIT_CODE = 130


async def run_until_stopped(
    config: RunnerConfig,
    client: redis.Redis | redis.RedisCluster,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[], None] | None = None,
    metrics: ReconciliationMetrics | None = None,
) -> None:
    """Start every account together, wait for SIGINT/SIGTERM (or `stop`), stop them all.

    `metrics`, if given, watch the accounts from before their startup runs until they stop.

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
        metrics.watch(runtime)
    started = False
    try:
        try:
            results = await runtime.start()
        except Exception as exc:
            msg = f"the accounts did not start: {exc!r}"
            raise StartError(msg) from exc
        started = True
        failed = [account_id for account_id, result in results.items() if result.error is not None]
        logger.info(
            "Reconciling %d account(s): %s; stop with Ctrl-C or SIGTERM",
            len(runtime.accounts),
            ", ".join(runtime.accounts),
        )
        if failed:
            logger.warning("The startup run failed for %s (see above); they are retried periodically", ", ".join(failed))
        if on_started is not None:
            on_started()
        await stop.wait()
    finally:
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
    os._exit(SECOND_SIGNAL_EXIT_CODE)
