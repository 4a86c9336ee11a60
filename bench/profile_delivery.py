"""Where the delivery worker's time goes: py-spy samples one run of `delivery_floors`.

Runs ``ours:gzip`` (N events through `Tracker.emit` into a buffered
`DeliveryBackend(HTTPBackend)` posting to the local sink) under ``py-spy
record`` and prints, per thread, the functions that were on the stack in
the most samples. Needs the ``bench`` extra (``make profile-delivery``
installs it).

    .venv/bin/python bench/profile_delivery.py [--events 50000] [--variant gzip|plain|durable]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from delivery_floors import ROOT, start_sink

# Samples count only inside these: the timed emit loop and the delivery threads
# (not the child's imports and set-up).
WINDOW = frozenset({"drive", "Worker.run", "Journal._commit_loop"})


def aggregate(raw: Path) -> dict[str, Counter[str]]:
    """Samples per thread and function (a function counts once per sample)."""
    threads: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip() or "thread"
        seen = {frame.split(" (")[0] for frame in frames[1:]}
        if not seen & WINDOW:
            continue
        counter = threads.setdefault(thread, Counter())
        for name in seen:
            counter[name] += int(count)
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--variant", default="gzip", choices=("gzip", "plain", "durable"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is missing; install it with: pip install 'event-tracking[bench]'")
    tmp = Path(tempfile.mkdtemp(prefix="eventtracking-profile-"))
    sink, url = start_sink(tmp)
    raw = tmp / "samples.txt"
    try:
        child = [sys.executable, str(ROOT / "bench" / "delivery_floors.py")]
        child += ["--child", f"ours:{args.variant}", "--url", url, "--events", str(args.events)]
        subprocess.run(
            [spy, "record", "--threads", "-r", "500", "-f", "raw", "-o", str(raw), "--", *child],
            check=True,
        )
    finally:
        sink.terminate()
        sink.wait(10)
    for thread, counter in aggregate(raw).items():
        total = max(counter.values())
        print(f"\n{thread}: {total} samples")
        for name, samples in counter.most_common(args.top):
            print(f"  {samples:6d} {100 * samples / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
