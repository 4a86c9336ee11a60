"""``manage.py eventtracking_catalog``: the core ``eventtracking catalog`` for this project.

The event types registered by the installed apps' ``events.py`` modules and
the ``EVENT_TRACKING_CATALOGUE`` files are documented, plus (when a store is
configured) what the store holds and the drift between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from ....cli.catalog import catalog_command
from ...conf import get_conf
from ..cli_bridge import ClickCommand, configured_store


class Command(ClickCommand):
    help = "Render the event catalogue of this project and its drift (eventtracking catalog)."
    click_command = catalog_command

    def extra_arguments(self, options: Mapping[str, Any]) -> list[str]:
        argv = []
        for app in apps.get_app_configs():
            if module_has_submodule(app.module, "events"):
                argv += ["--module", f"{app.name}.events"]
        for path in get_conf().catalogue:
            argv += ["--catalogue", str(path)]
        if options.get(self.store_param) is None:
            store = configured_store()
            if store is not None and _exists(store):
                argv += ["--store", store]
        return argv


def _exists(store: str) -> bool:
    return "://" in store or Path(store).exists()
