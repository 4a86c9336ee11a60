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

Each count is the median over `--layouts` runs that differ only in the size
of an unused environment variable, which moves the process's memory layout.
CPython's method cache is indexed by the address of the attribute name, so
one layout can make two lookups of every event evict each other. Measured
here: in some layouts a `hasattr` that orjson makes for each event misses
the cache every time, which adds some 600 instructions per JSON-lines event
(callgrind's call graph shows it; the code is the same).

Where emit to JSON lines spends its instructions: ``jsonl`` minus ``null``
is what the JSON-lines side adds to emit itself (``null``: the tracker and a
backend that does nothing); ``jsonl-plain`` is the writer called per event,
without the delivery worker's inline mode and its batches.
``--annotate`` also prints the C functions that differ most between N and 6N
events of ``jsonl``, per event (callgrind_annotate).

    .venv/bin/python bench/instructions.py [--events 4000] [--annotate]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from references import floor_command

ROOT = Path(__file__).resolve().parent.parent

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
elif system == "ten":
    run.bench_ten_jsonl(n, tmp)
else:
    backend = {{
        "null": lambda: run.NullBackend(),
        "jsonl": lambda: run.configured(run.JSONLinesBackend, tmp / "events.jsonl"),
        "jsonl-plain": lambda: run.JSONLinesBackend(tmp / "events.jsonl"),
        "memory": lambda: run.InMemoryBackend(),
        "sqlite": lambda: run.configured(run.SQLiteBackend, tmp / "events.db"),
    }}[system]()
    tracker = Tracker({{"b": backend}})
    run.timed(tracker, n, tracker.close)  # the workload and close, nothing read back
"""
COLLECTED = re.compile(r"Collected : (\d+)")


LAYOUT_PADS = (0, 17, 40, 64, 101, 7, 29)  # environment padding of each layout, in bytes


def instructions(argv: list[str], out: str = "/dev/null", pad: int = 0) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", ET_LAYOUT_PAD="x" * pad)
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    match = COLLECTED.search(proc.stderr)
    assert match, proc.stderr[-2000:]
    return int(match[1])


def per_event(argv_for: dict[int, list[str]], n: int, layouts: int = 1) -> list[float]:
    """Instructions per event under each of `layouts` memory layouts (see module docs)."""
    return [
        (instructions(argv_for[6 * n], pad=pad) - instructions(argv_for[n], pad=pad)) / (5 * n)
        for pad in LAYOUT_PADS[:layouts]
    ]


def spread(counts: list[float]) -> str:
    """The median, and the range when there is more than one count."""
    middle = statistics.median(counts)
    if len(counts) == 1:
        return f"{middle:>9,.0f}"
    return f"{middle:>9,.0f}  ({min(counts):,.0f}-{max(counts):,.0f})"


ANNOTATED = re.compile(r"^\s*([0-9,]+) .*?\s(\S+:\S+)")


def by_function(out: str) -> Counter[str]:
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--inclusive=no", out],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = ANNOTATED.match(line)
        if match:
            counts[match[2].rsplit("/", 1)[-1]] += int(match[1].replace(",", ""))
    return counts


def annotate(argv_for: dict[int, list[str]], n: int, top: int = 15) -> None:
    """The C functions whose instructions grow most per event between N and 6N events."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {k: f"{tmp}/callgrind.{k}" for k in argv_for}
        for k, argv in argv_for.items():
            instructions(argv, files[k])
        small, large = by_function(files[n]), by_function(files[6 * n])
    diff = {name: (large[name] - small[name]) / (5 * n) for name in large}
    print(f"  per event, by C function (self cost; top {top}):")
    for name, count in sorted(diff.items(), key=lambda item: -item[1])[:top]:
        print(f"    {count:>8,.0f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--annotate", action="store_true", help="jsonl, by C function")
    parser.add_argument(
        "--layouts", type=int, default=3, help="memory layouts per count (median; module docs)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    n, python = args.events, sys.executable
    child = CHILD.format(bench=str(ROOT / "bench"))
    systems = ("null", "validated", "jsonl", "jsonl-plain", "memory", "sqlite", "ten")
    if not 1 <= args.layouts <= len(LAYOUT_PADS):
        parser.error(f"--layouts must be between 1 and {len(LAYOUT_PADS)}")
    layouts = args.layouts
    runs = {
        system: per_event(
            {k: [python, "-c", child, system, str(k)] for k in (n, 6 * n)}, n, layouts
        )
        for system in systems
    }
    with tempfile.TemporaryDirectory() as tmp:
        for floor in ("limit", "sqlite-limit", "serialize-once"):
            runs[floor] = per_event(
                {k: floor_command(floor, Path(tmp) / f"{floor}-{k}", k) for k in (n, 6 * n)},
                n,
                layouts,
            )
    counts = {name: statistics.median(values) for name, values in runs.items()}
    print(
        f"instructions per event (callgrind, {n:,} vs {6 * n:,} events; "
        f"median of {layouts} memory layout(s), range in brackets)"
    )
    for name in ("limit", "sqlite-limit", "serialize-once", *systems):
        print(f"  {name:<14} {spread(runs[name])}")
    print(f"  jsonl / limit               {counts['jsonl'] / counts['limit']:.2f}x")
    print(f"  sqlite / sqlite-limit       {counts['sqlite'] / counts['sqlite-limit']:.2f}x")
    print(f"  ten / serialize-once        {counts['ten'] / counts['serialize-once']:.2f}x")
    side, plain = counts["jsonl"] - counts["null"], counts["jsonl-plain"] - counts["null"]
    print(
        f"  jsonl split: emit (tracker, no-op backend) {counts['null']:,.0f}; JSON-lines side "
        f"(inline delivery, batches of 100 encoded and written) {side:,.0f}; the writer "
        f"called per event without delivery adds {plain:,.0f}"
    )
    extra = counts["validated"] - counts["null"]
    print(f"  validation adds             {extra:,.0f} ({extra / counts['null']:.0%} of emit)")
    if args.annotate:
        annotate({k: [python, "-c", child, "jsonl", str(k)] for k in (n, 6 * n)}, n)


if __name__ == "__main__":
    main()
