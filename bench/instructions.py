"""Deterministic per-event instruction counts (valgrind callgrind), for ratios noise cannot move.

Wall-clock figures on a shared machine move by 10-20% from run to run; the
number of instructions a loop executes does not. This runs the shared
workload through ours and through the hand-written floors under callgrind,
twice (N and 6N events), and divides the difference by 5N, so start-up cost
cancels out. Event ids draw their random bits once per millisecond; under
valgrind a millisecond holds far fewer events than in a real run, so the
ids' millisecond is stretched to 100 ms for the count (the clock is real).
Instructions are not time (cache misses and branch mispredictions are not
counted), so this complements `run.py`, it does not replace it.

    .venv/bin/python bench/instructions.py [--events 4000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "bench"

# One child process per (system, N): builds a tracker (or runs a floor) and emits N events.
CHILD = r"""
import os, sys, tempfile
from datetime import timedelta
sys.path.insert(0, {bench!r})
import eventtracking.event as ev
# Ids share one random draw per millisecond of the clock. Valgrind runs some
# 50 times slower, so a real millisecond would hold a handful of events
# instead of hundreds; a 100 ms "millisecond" restores the real proportion.
ev._MS = timedelta(milliseconds=100)
from pathlib import Path
import run
from eventtracking.tracker import Tracker
system, n = sys.argv[1], int(sys.argv[2])
tmp = Path(tempfile.mkdtemp())
if system == "validated":
    run.bench_validated(n, tmp)
else:
    backend = {{
        "null": lambda: run.NullBackend(),
        "jsonl": lambda: run.configured(run.JSONLinesBackend, tmp / "events.jsonl"),
        "memory": lambda: run.InMemoryBackend(),
        "sqlite": lambda: run.configured(run.SQLiteBackend, tmp / "events.db"),
    }}[system]()
    tracker = Tracker({{"b": backend}})
    run.timed(tracker, n, tracker.close)  # the workload and close, nothing read back
"""
COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(argv: list[str]) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    match = COLLECTED.search(proc.stderr)
    assert match, proc.stderr[-2000:]
    return int(match[1])


def per_event(argv_for: dict[int, list[str]], n: int) -> float:
    return (instructions(argv_for[6 * n]) - instructions(argv_for[n])) / (5 * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    n, python = args.events, sys.executable
    child = CHILD.format(bench=str(ROOT / "bench"))
    ours = {
        system: per_event({k: [python, "-c", child, system, str(k)] for k in (n, 6 * n)}, n)
        for system in ("null", "validated", "jsonl", "memory", "sqlite")
    }
    floors = {
        "limit": per_event(
            {
                k: [python, str(PEERS / "peers.py"), "limit", f"/tmp/et-ir-{k}.jsonl", str(k)]
                for k in (n, 6 * n)
            },
            n,
        ),
        "sqlite-limit": per_event(
            {
                k: [python, str(PEERS / "sqlite_limit.py"), f"/tmp/et-ir-{k}.db", str(k)]
                for k in (n, 6 * n)
            },
            n,
        ),
    }
    print(f"instructions per event (callgrind, {n:,} vs {6 * n:,} events)")
    for name, count in {**floors, **ours}.items():
        print(f"  {name:<12} {count:>9,.0f}")
    print(f"  jsonl / limit               {ours['jsonl'] / floors['limit']:.2f}x")
    print(f"  sqlite / sqlite-limit       {ours['sqlite'] / floors['sqlite-limit']:.2f}x")
    extra = ours["validated"] - ours["null"]
    print(f"  validation adds             {extra:,.0f} ({extra / ours['null']:.0%} of emit)")


if __name__ == "__main__":
    main()
