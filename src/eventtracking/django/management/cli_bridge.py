"""Run the core ``eventtracking`` click commands as Django management commands.

`ClickCommand` turns the options of a click command into argparse options
(same names, same help), so ``manage.py eventtracking_query --name 'edx.*'``
behaves like ``eventtracking query --name 'edx.*'``. Without ``--store`` the
configured store is used: the setting ``EVENT_TRACKING_STORE`` (a SQLite path
or a PostgreSQL URL), else the first ``SQLiteBackend`` in
``EVENT_TRACKING_BACKENDS``; with neither, the core default
(``$EVENTTRACKING_STORE``, else ``./events.db``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import click
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends.sqlite import SQLiteBackend
from ...config import import_object
from ...exceptions import ImproperlyConfigured
from ..conf import get_conf

__all__ = ["ClickCommand", "configured_store"]


class ClickCommand(BaseCommand):
    """A management command that runs `click_command` with the same options."""

    click_command: ClassVar[click.Command]
    store_param: ClassVar[str] = "store_path"

    def _options(self) -> Iterator[click.Option]:
        for param in self.click_command.params:
            if isinstance(param, click.Option) and param.name:
                yield param

    def add_arguments(self, parser: CommandParser) -> None:
        for param in self._options():
            kwargs: dict[str, Any] = {"dest": param.name, "help": param.help}
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

    def handle(self, *args: Any, **options: Any) -> None:
        argv: list[str] = []
        for param in self._options():
            value = options.get(param.name or "")
            if value is None or value is False or value == []:
                continue
            flag = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
            if param.is_flag:
                argv.append(flag)
            elif param.multiple:
                for item in value:
                    argv += [flag, str(item)]
            else:
                argv += [flag, str(value)]
        argv += self.extra_arguments(options)
        try:
            self.click_command.main(
                args=argv, prog_name=f"manage.py {self.click_command.name}", standalone_mode=False
            )
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from None
        except click.exceptions.Exit as exc:
            if exc.exit_code:
                raise CommandError(f"exit status {exc.exit_code}") from None

    def extra_arguments(self, options: Mapping[str, Any]) -> list[str]:
        """Arguments added to the command line: the configured store when none was given."""
        if options.get(self.store_param) is None:
            store = configured_store()
            if store is not None:
                return ["--store", store]
        return []


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
