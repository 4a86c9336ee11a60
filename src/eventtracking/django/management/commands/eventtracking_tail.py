"""``manage.py eventtracking_tail``: the core ``eventtracking tail`` on the configured store."""

from __future__ import annotations

from ....cli.commands import tail
from ..cli_bridge import ClickCommand


class Command(ClickCommand):
    help = "Show the last stored events; -f keeps following (eventtracking tail)."
    click_command = tail
