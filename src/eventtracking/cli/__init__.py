"""The ``eventtracking`` command: application code on top of the core.

``commands`` holds the click group and the store commands (demo, query, tail,
stats); ``catalog``, ``consume`` and ``delivery`` add their subcommands;
``demo`` is the simulated workload and ``times`` parses ``--since``/``--until``.
Nothing in the core imports this package.
"""

from __future__ import annotations

from .commands import cli, main

__all__ = ["cli", "main"]
