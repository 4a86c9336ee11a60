"""The commands ``eventtracking demo`` suggests next, written so that they run as printed.

After ``make demo`` the command lives in ``.venv/bin`` and is not on PATH,
so the suggestions name the program the way it was started (``.venv/bin/eventtracking``);
when ``eventtracking`` on PATH is this very program, the bare name is enough.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .store_option import DEFAULT_STORE


def program(argv0: str | None = None, executable: str | None = None) -> str:
    """How to start this command again from the current directory.

    `argv0` defaults to ``sys.argv[0]``, `executable` to ``sys.executable``.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    path = Path(argv0)
    if path.name == "__main__.py":  # python -m eventtracking
        return f"{shlex.quote(executable)} -m eventtracking"
    if path.name.startswith("eventtracking") and path.is_file() and "/" in argv0:
        found = shutil.which(path.name)
        if found is None or Path(found).resolve() != path.resolve():
            return shlex.quote(argv0)
    return "eventtracking"


def next_commands(store_path: str, prog: str | None = None) -> list[str]:
    """The commands to try on the store the demo filled, one per line, each runnable as is."""
    prog = program() if prog is None else prog
    store = "" if store_path == DEFAULT_STORE else f" --store {shlex.quote(store_path)}"
    return [
        f"{prog} query{store} --name 'edx.video.*' --limit 5",
        f"{prog} query{store} --context user_id=10938",
        f"{prog} query{store} --data success=correct --columns ctx.username,data.problem_id",
        f"{prog} stats{store} --by hour",
        f"{prog} catalog --store {shlex.quote(store_path)} --check",
        f"{prog} tail{store} -f    # Ctrl-C stops it",
    ]


def render(lines: Sequence[str]) -> str:
    """The block printed after the demo's summary."""
    return "Next, try:\n" + "\n".join(f"  {line}" for line in lines)
