"""``manage.py eventtracking_deadletters list|show|replay``: ``eventtracking deadletters``."""

from __future__ import annotations

from ....cli.delivery import deadletters_command
from ..cli_bridge import ClickGroupCommand


class Command(ClickGroupCommand):
    help = "Inspect and re-deliver dead letters (eventtracking deadletters)."
    click_group = deadletters_command
