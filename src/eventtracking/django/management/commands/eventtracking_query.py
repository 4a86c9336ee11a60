"""``manage.py eventtracking_query``: the core ``eventtracking query`` on the configured store."""

from __future__ import annotations

from ....cli.commands import query
from ..cli_bridge import ClickCommand


class Command(ClickCommand):
    help = "Show stored events that match every filter (eventtracking query)."
    click_command = query
