"""Run the core ``eventtracking`` click commands as Django management commands.

`ClickCommand` turns the options of a click command into argparse options
and arguments (same names, same help), so ``manage.py eventtracking_query
--name 'edx.*'`` behaves like ``eventtracking query --name 'edx.*'``;
`ClickGroupCommand` does the same for a group's subcommands
(``manage.py eventtracking_deadletters list``). Without ``--store`` the
configured store is used: the setting ``EVENT_TRACKING_STORE`` (a SQLite path
or a PostgreSQL URL), else the first ``SQLiteBackend`` in
``EVENT_TRACKING_BACKENDS``; with neither, the core default
(``$EVENTTRACKING_STORE``, else ``./events.db``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import click
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends.sqlite import SQLiteBackend
from ...config import import_object
from ...exceptions import ImproperlyConfigured
from ..conf import get_conf

__all__ = ["ClickCommand", "ClickGroupCommand", "configured_store"]


def _params(command: click.Command) -> Iterator[click.Parameter]:
    for param in command.params:
        if isinstance(param, click.Option | click.Argument) and param.name:
            yield param


def add_click_params(parser: argparse.ArgumentParser, command: click.Command) -> None:
    """Give `parser` the options and arguments of `command` (same names, same help)."""
    for param in _params(command):
        kwargs: dict[str, Any] = {}
        if isinstance(param, click.Argument):
            nargs = "*" if param.nargs == -1 else None if param.required else "?"
            parser.add_argument(param.name or "", nargs=nargs, metavar=param.human_readable_name)
            continue
        assert isinstance(param, click.Option)
        kwargs = {"dest": param.name, "help": param.help}
        if param.is_flag:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = param.metavar or (param.name or "").upper()
            if param.multiple:
                kwargs["action"] = "append"
        try:
            parser.add_argument(*param.opts, **kwargs)
        except argparse.ArgumentError:  # clashes with one of Django's own options
            continue


def click_argv(
    command: click.Command, options: Mapping[str, Any], extra: Sequence[str] = ()
) -> list[str]:
    """The command line for `command` that gives the values argparse parsed into `options`.

    `extra` arguments go after the options and before the positional arguments.
    """
    argv: list[str] = []
    positional: list[str] = []
    for param in _params(command):
        value = options.get(param.name or "")
        if value is None or value is False or value == []:
            continue
        if isinstance(param, click.Argument):
            positional += [str(item) for item in value] if isinstance(value, list) else [str(value)]
            continue
        assert isinstance(param, click.Option)
        flag = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
        if param.is_flag:
            argv.append(flag)
        elif param.multiple:
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return [*argv, *extra] + (["--", *positional] if positional else [])


def run_click(command: click.Command, argv: list[str], name: str) -> None:
    """Run `command` with `argv`; its errors become CommandError (one line, non-zero exit).

    A command that ends with ``sys.exit(1)`` (``catalog --check``, a replay
    with failures) exits the same way here.
    """
    try:
        command.main(args=argv, prog_name=f"manage.py {name}", standalone_mode=False)
    except click.ClickException as exc:
        raise CommandError(exc.format_message()) from None
    except click.exceptions.Exit as exc:
        if exc.exit_code:
            raise CommandError(f"exit status {exc.exit_code}") from None


class ClickCommand(BaseCommand):
    """A management command that runs `click_command` with the same options.

    `store_param` names the option that gets the configured store when it is
    not given; `extra_arguments` can add other defaults instead.
    """

    click_command: ClassVar[click.Command]
    store_param: ClassVar[str] = "store_path"

    def add_arguments(self, parser: CommandParser) -> None:
        add_click_params(parser, self.click_command)

    def handle(self, *args: Any, **options: Any) -> None:
        argv = click_argv(self.click_command, options, self.extra_arguments(options))
        run_click(self.click_command, argv, self.click_command.name or "")

    def extra_arguments(self, options: Mapping[str, Any]) -> list[str]:
        """Arguments added to the command line: the configured store when none was given."""
        if options.get(self.store_param) is None:
            store = configured_store()
            if store is not None:
                return ["--store", store]
        return []


class ClickGroupCommand(BaseCommand):
    """A management command with the subcommands of the click group `click_group`."""

    click_group: ClassVar[click.Group]

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name, command in sorted(self.click_group.commands.items()):
            sub = subparsers.add_parser(name, help=command.get_short_help_str())
            add_click_params(sub, command)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"]
        command = self.click_group.commands[name]
        argv = [name, *click_argv(command, options)]
        run_click(self.click_group, argv, self.click_group.name or "")


def configured_store() -> str | None:
    """``EVENT_TRACKING_STORE``, else the path of the first SQLiteBackend configured, else None."""
    try:
        conf = get_conf()
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    if conf.store is not None:
        return conf.store
    return next(_sqlite_paths(getattr(settings, "EVENT_TRACKING_BACKENDS", None) or {}), None)


def _sqlite_paths(node: Any) -> Iterator[str]:
    """Every SQLiteBackend path in a component tree, in settings order."""
    if isinstance(node, Mapping):
        engine = node.get("ENGINE", node.get("engine"))
        options = node.get("OPTIONS", node.get("options")) or {}
        if isinstance(engine, str) and _is_sqlite(engine) and isinstance(options, Mapping):
            yield str(options.get("path", "events.db"))
        for value in node.values():
            if isinstance(value, Mapping | list | tuple):
                yield from _sqlite_paths(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _sqlite_paths(item)


def _is_sqlite(engine: str) -> bool:
    try:
        target = import_object(engine, "ENGINE")
    except ImproperlyConfigured:
        return False
    return isinstance(target, type) and issubclass(target, SQLiteBackend)
