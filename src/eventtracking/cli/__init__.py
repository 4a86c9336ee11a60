"""The ``eventtracking`` command: application code on top of the core.

``commands`` holds the click group and the store commands (demo, query,
tail); ``stats``, ``catalog``, ``consume`` and ``delivery`` add their
subcommands; ``demo`` (with ``demo_visits`` and ``demo_types``) is the
simulated workload and its documentation, ``next_steps`` what the demo
suggests; ``filters``, ``render``, ``store_option``, ``progress`` and
``times`` are what the commands share (checked filters and dotted paths,
tables, ``--store``, progress bars, ``--since``/``--until``).
Nothing in the core imports this package.
"""

from __future__ import annotations

from .commands import cli, main

__all__ = ["cli", "main"]
