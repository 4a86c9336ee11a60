"""What delivery has left behind, for the command line and the console.

`delivery_report` reads a journal directory: each worker's metrics file,
the backlog of every lane, the dead letters by backend. `redeliver` sends a
page of dead letters again and updates their store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..exceptions import StoreError
from .deadletter import DEFAULT_FILENAME, DeadLetter, DeadLetterStore
from .lanes import LANE_PREFIX, SEGMENT_SUFFIX
from .metrics import process_alive
from .replay import Replayer

__all__ = ["delivery_report", "redeliver"]


def delivery_report(journal_dir: Path) -> dict[str, Any]:
    """What ``stats --delivery`` shows: each worker's metrics file, lane backlogs, dead letters."""
    workers = []
    for path in sorted(journal_dir.rglob("metrics-*.json")):
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced, or removed with its lane
        pid = snapshot.get("pid")
        snapshot["alive"] = isinstance(pid, int) and process_alive(pid)
        snapshot["age_s"] = round(time.time() - float(snapshot.get("updated", 0)), 1)
        snapshot["file"] = str(path)
        workers.append(snapshot)
    lanes = {}
    for lane in sorted(journal_dir.rglob(f"{LANE_PREFIX}*")):
        if lane.is_dir():
            segments = list(lane.glob(f"*{SEGMENT_SUFFIX}"))
            lanes[str(lane)] = sum(s.stat().st_size for s in segments if s.exists())
    dead: dict[str, dict[str, int]] = {}
    for path in sorted(journal_dir.rglob(DEFAULT_FILENAME)):
        try:
            store = DeadLetterStore(path, create=False)
        except StoreError:
            continue
        try:
            dead[str(path)] = dict(store.counts_by_backend())
        finally:
            store.close()
    return {"journal_dir": str(journal_dir), "workers": workers, "lanes": lanes, "dead": dead}


def redeliver(
    store: DeadLetterStore, replayer: Replayer, letters: list[DeadLetter]
) -> tuple[int, int]:
    """Send `letters` through `replayer`: delivered ones leave `store`, failures stay.

    A letter that fails again is kept with one more attempt and the new
    reason. Returns (delivered, failed).
    """
    by_event = {id(letter.event): letter.id for letter in letters}
    failures = replayer.deliver([letter.event for letter in letters])
    failed_ids = {by_event[id(event)]: reason for event, reason in failures}
    store.delete([letter.id for letter in letters if letter.id not in failed_ids])
    now = time.time()
    for letter_id, reason in failed_ids.items():
        store.record_failure([letter_id], reason, now)
    return len(letters) - len(failed_ids), len(failed_ids)
