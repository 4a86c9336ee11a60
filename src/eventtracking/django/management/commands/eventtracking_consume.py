"""``manage.py eventtracking_consume``: ``eventtracking consume`` into the configured store.

Without ``--to`` the events go to the store the other commands read
(``EVENT_TRACKING_STORE``, else the first SQLiteBackend configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....cli.consume import consume_command
from ..cli_bridge import ClickCommand, configured_store


class Command(ClickCommand):
    help = "Move events from a Redis stream into a store, as one consumer of a group."
    click_command = consume_command

    def extra_arguments(self, options: Mapping[str, Any]) -> list[str]:
        if not options.get("target"):
            store = configured_store()
            if store is not None:
                return ["--to", store]
        return []
