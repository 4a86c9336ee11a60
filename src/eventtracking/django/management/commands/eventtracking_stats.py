"""``manage.py eventtracking_stats``: the core ``eventtracking stats`` on the configured store."""

from __future__ import annotations

from ....cli.commands import stats
from ..cli_bridge import ClickCommand


class Command(ClickCommand):
    help = "Count the stored events per name and per hour (eventtracking stats)."
    click_command = stats
