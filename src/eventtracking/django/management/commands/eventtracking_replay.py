"""``manage.py eventtracking_replay``: the core ``eventtracking replay`` from the configured store.

Without ``--from`` the events come from the store the other commands read
(``EVENT_TRACKING_STORE``, else the first SQLiteBackend configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....cli.delivery import replay_command
from ..cli_bridge import ClickCommand, configured_store


class Command(ClickCommand):
    help = "Re-send stored events to one backend (eventtracking replay)."
    click_command = replay_command

    def extra_arguments(self, options: Mapping[str, Any]) -> list[str]:
        if not options.get("sources"):
            store = configured_store()
            if store is not None:
                return ["--from", store]
        return []
