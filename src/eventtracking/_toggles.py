"""Open edX's ``SEND_TRACKING_EVENT_EMITTED_SIGNAL`` toggle, built on first access.

`eventtracking.config` (where Open edX code looks for it) and the event-bus
backend both read it from here, so the backend need not import the
configuration. Building it needs edx-toggles (the ``openedx`` extra).
"""

from __future__ import annotations

import typing
from typing import Any

if typing.TYPE_CHECKING:
    from edx_toggles.toggles import SettingToggle

    SEND_TRACKING_EVENT_EMITTED_SIGNAL: SettingToggle
else:

    def __getattr__(name: str) -> Any:
        if name != "SEND_TRACKING_EVENT_EMITTED_SIGNAL":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            from edx_toggles.toggles import SettingToggle
        except ImportError as exc:
            from .exceptions import MissingExtraError

            raise MissingExtraError((exc.name or "edx_toggles").split(".")[0], "openedx") from exc
        # Named after eventtracking.config, where Open edX documents and finds it.
        toggle = SettingToggle(name, default=False, module_name="eventtracking.config")
        # setdefault: when two threads race, both get the toggle stored first.
        return globals().setdefault(name, toggle)
