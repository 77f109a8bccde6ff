"""The `reconciliation` command: `demo`, `watch`, `run`, `check`, `history` and `serve`.

Each command lives in its own module, `reconciliation._cli.commands.<name>`, imported only
when the command runs or its help is asked: `reconciliation --help` imports click and this
module, nothing else of the package (no runtime, no Redis client, no pyarrow).

The library configures no logging; the commands do (to stderr, `-v` for DEBUG), so
an actor that dies or a run that fails is always on screen. The exit codes are `ExitCode`,
summed up under every command's help (`EXIT_CODES_HELP`) and explained in
docs/configuration.md.
"""

from __future__ import annotations

import enum
import importlib

import click

__all__ = ["COMMANDS", "EXIT_CODES_HELP", "ExitCode", "main"]


class ExitCode(enum.IntEnum):
    OK = 0
    NOT_AS_ASKED = 1
    USAGE = 2
    REDIS_UNREACHABLE = 3
    START_FAILED = 4
    STORE_UNAVAILABLE = 5
    REDIS_REFUSED = 6
    INTERRUPTED = 130


EXIT_CODES_HELP = """\b
Exit codes:
  0  done as asked (check: the files agree)
  1  done, but not as asked (a demo fault uncaught, watch timed out before --count; check: breaks)
  2  usage or configuration error (check: a bad file, its row named)
  3  Redis unreachable
  4  a service could not be started or its metrics served (run), the board could not listen (serve)
  5  the audit store could not be read (history, serve)
  6  Redis refused a command (watch: a stream key holds another type)
"""

COMMANDS = {
    "check": "Reconcile two position files once, print the breaks; exit 0 if they agree, 1 if not.",
    "demo": "Play a paper-trading session in which every kind of break happens.",
    "history": "Show an account's recorded runs and its open (or all) breaks, from the audit store.",
    "run": "Reconcile the configured accounts as a standalone process, until SIGINT or SIGTERM.",
    "serve": "Serve the live break board: every account's last run and open breaks, in the browser.",
    "watch": "Show runs, breaks, resolved breaks and halts as they are published, coloured by severity.",
}
"""Each command's name and the first line of its help: the group's help lists them without importing them."""


class _LazyGroup(click.Group):
    """Click's lazily loading group: command NAME is `reconciliation._cli.commands.NAME.NAME`."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's signature
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        if cmd_name not in COMMANDS:
            return None
        command: click.Command = getattr(importlib.import_module(f"{__package__}.commands.{cmd_name}"), cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list click would show, drawn from `COMMANDS` instead of the commands themselves."""
        stand_ins = click.Group(commands=[click.Command(name, help=summary) for name, summary in COMMANDS.items()])
        stand_ins.format_commands(ctx, formatter)


@click.group(
    cls=_LazyGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("-v", "--verbose", count=True, help="Log at DEBUG level (every actor's messages).")
@click.version_option(package_name="reconciliation")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Compare a trading engine's book with its broker's and publish every break to Redis.

    \b
    Start here:
      reconciliation demo                   a 30-second paper-trading session
      reconciliation watch --replay 20      in a second terminal: the alerts, live
      reconciliation run --config FILE      reconcile accounts as a standalone process
      reconciliation check --local F --broker F   reconcile two position files, once
      reconciliation history --store F --account ACC   what was found, and what is still open
      reconciliation serve --store F        the open breaks of every account, live in the browser
    """
    ctx.obj = verbose
