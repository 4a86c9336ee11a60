"""The named trackers and how the default one is built: state of the whole process.

Kept apart from `tracker` so that code below the tracker (the Celery task,
the batched async routing backend) can find a tracker by name without
importing the tracker module. Importing this module has no side effects.
The fork and exit hooks live in `_process`; counters in `diagnostics`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .tracker import Tracker

DEFAULT_TRACKER_NAME: Final = "default"

# Trackers by name (`tracker.register_tracker`); the same dict as ``tracker.TRACKERS``.
TRACKERS: dict[str, Tracker] = {}

default_lock: Final = threading.Lock()
# How the default tracker is built on first use (`tracker.set_default_factory`);
# None: from configuration (`config.build_default_tracker`).
default_factory: Callable[[], Any] | None = None
