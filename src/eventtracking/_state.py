"""Everything the whole process shares, in one place, with no import side effects.

The modules that act on this state keep their behaviour and read or change
the containers here:

* named trackers and how the default one is built (`tracker`);
* documentation versions by id, as seen by this process (`registry`);
* counters and the memory of which warnings were logged (`diagnostics`);
* the fork and exit hooks and the objects they reach (`_process`).

* resources of the process: journal directories in use (`delivery.paths`),
  a parent's PostgreSQL connections seen in a forked child (`store.postgres`).

Importing this module imports nothing else from the package and starts
nothing: no thread, no ``atexit``, no fork hook. Per-object caches stay with
their objects. In the core, the one module-level state outside this file is
the id generator's current millisecond and its pool of random bits in
`event` (read on every id, so kept beside it), which forget themselves in a
forked child through a fork hook; the
Django app keeps its settings cache in its own package, on top of the core.
`tests/test_layers.py` holds the core to this.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .diagnostics import Counters
    from .registry.model import TypeVersion
    from .tracker import Tracker

# -- named trackers ----------------------------------------------------------------

DEFAULT_TRACKER_NAME: Final = "default"

# Trackers by name (`tracker.register_tracker`); the same dict as ``tracker.TRACKERS``.
TRACKERS: dict[str, Tracker] = {}

default_lock: Final = threading.Lock()
# How the default tracker is built on first use (`tracker.set_default_factory`);
# None: from configuration (`config.build_default_tracker`).
default_factory: Callable[[], Any] | None = None

# -- documentation versions by id (`registry.remember` / `metadata_for`) ----------

metadata_by_id: dict[str, TypeVersion] = {}
metadata_lock: Final = threading.Lock()

# -- counters and warnings (`diagnostics`) -----------------------------------------

counters: Counter[str] = Counter()
counters_lock: Final = threading.Lock()
warned: set[tuple[str, ...]] = set()  # keys `warn_once` has logged
last_logged: dict[str, float] = {}  # `log_burst` key -> when it last logged
budgets: dict[str, list[float]] = {}  # kind of warning -> [window start, lines, suppressed]
owned_names: set[str] = set()  # names ever counted through a `Counters`
all_owned: weakref.WeakSet[Counters] = weakref.WeakSet()  # every live `Counters`, for reset()

# -- resources that belong to the process, not to one object ------------------------

# Journal directories in use, by resolved path -> the delivery backend that owns
# each (`delivery.paths`): two backends never share one journal.
journal_owners: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()
# PostgreSQL connections opened by a parent process, seen in a forked child:
# kept referenced and never closed there, since closing would end the parent's
# session (`store.postgres`).
inherited_connections: list[Any] = []

# -- fork and exit hooks (`_process`) ------------------------------------------------


class Hooks:
    """The fork and exit registry: functions to call and the live objects to reach.

    One instance, `HOOKS`. `lock` is replaced in a forked child (a lock held
    by another thread at fork time would otherwise stay held forever).
    """

    __slots__ = ("before", "child", "forking", "installed", "live", "lock", "parent")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False  # os.register_at_fork and atexit are set up
        self.before: list[Callable[[], object]] = []
        self.parent: list[Callable[[], object]] = []
        self.child: list[Callable[[], object]] = []
        self.live: weakref.WeakSet[Any] = weakref.WeakSet()  # tracked participants
        self.forking: list[Any] = []  # the participants a fork in progress reaches


HOOKS: Final = Hooks()
