"""Run the floors and the peers of bench/peers/ from `run.py` and `instructions.py`.

Floors run in our own interpreter (they need orjson only); peers run in the
virtual environments `make bench-peers` builds under build/peers/ (the
original event-tracking cannot share an environment with us: both install
the package ``eventtracking``). Each run is a new process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
BUILT = ROOT / "build" / "peers"
FLOORS = ("limit", "serialize-once", "sqlite-limit")
# peer -> the environment under build/peers/ that has it
SYSTEMS = {"eventtracking": "et", "structlog": "structlog", "logging": "structlog"}
LINE = re.compile(r"^(\S+) ([0-9.]+) us/event$")


def floor_command(floor: str, out: Path, n: int) -> list[str]:
    """The command line that runs one floor (for timing or under valgrind)."""
    return [sys.executable, str(PEERS / "floors.py"), floor, str(out), str(n)]


def peer_python(system: str) -> Path:
    return BUILT / SYSTEMS[system] / "bin" / "python"


def missing_peers() -> list[str]:
    """The peers whose environment is not built (`make bench-peers` builds them)."""
    return [system for system in SYSTEMS if not peer_python(system).is_file()]


def _figure(cmd: list[str], expected: str) -> float:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    match = LINE.match(lines[-1]) if lines else None
    if proc.returncode != 0 or match is None or match[1] != expected:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return float(match[2])


def run_floor(floor: str, n: int, tmp: Path) -> float:
    """Microseconds per event of one floor, in a new process."""
    return _figure(floor_command(floor, tmp / f"floor-{floor}", n), floor)


def run_peer(system: str, n: int, tmp: Path) -> float:
    """Microseconds per event of one peer, in a new process of its own environment."""
    cmd = [str(peer_python(system)), str(PEERS / "systems.py"), system, str(tmp / system), str(n)]
    try:
        return _figure(cmd, system)
    finally:
        (tmp / system).unlink(missing_ok=True)
