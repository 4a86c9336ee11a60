"""What checking every JSON Schema keyword costs per event, against the field-only check of 5.0.0.

Until 5.0.0 a type registered with ``schema=`` was checked by the generated
field validator alone (type, required, enum, unknown fields). Now a schema
that says more is also checked by fastjsonschema. This times, per event, on
the same schema and data:

- the validator alone: 5.0.0's field validator vs the field + schema one;
- the whole ``emit`` (warn policy, a no-op backend) with each validator;
- a type registered with field specs (unchanged: the field validator only).

A few seconds of one core; best of several repeats. Prints a Markdown table.

    .venv/bin/python bench/schema_validation.py [--events 50000]
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

from eventtracking.registry import Registry
from eventtracking.registry.validate import compile_validator
from eventtracking.tracker import Tracker

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "video_id": {"type": "string", "pattern": "^block-v1:"},
        "position": {"type": "number", "minimum": 0},
        "speed": {"enum": ["0.5", "1.0", "2.0"]},
        "attempts": {"type": "integer", "minimum": 0, "maximum": 100},
        "answer": {"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 64}]},
    },
    "required": ["video_id", "position"],
    "additionalProperties": False,
}
DATA = {"video_id": "block-v1:x", "position": 12.5, "speed": "1.0", "attempts": 3, "answer": "a"}
FIELDS = {
    "video_id": {"type": "string", "required": True},
    "position": {"type": "number", "required": True},
    "speed": {"enum": ["0.5", "1.0", "2.0"]},
    "attempts": {"type": "integer"},
    "answer": {"type": ["integer", "string"]},
}


class _Null:
    def send(self, event: Any) -> None:
        pass


def per_event(statement: Any, events: int) -> float:
    """Best of 5 repeats, in microseconds per call."""
    return min(timeit.repeat(statement, number=events, repeat=5)) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    events = parser.parse_args().events

    registry = Registry()
    version = registry.register("t", "T.", schema=SCHEMA)
    before = compile_validator(version)  # what 5.0.0 ran for this schema
    after = registry.validator(version.id)
    assert after is not None and before(DATA) is None and after(DATA) is None

    old_tracker = Tracker({"null": _Null()}, validation="warn")
    old_tracker.register("t", "T.", schema=SCHEMA)
    old_tracker.registry._validators[version.id] = before  # 5.0.0's check on the same type
    entry = old_tracker.registry._hot["t"]
    old_tracker.registry._hot["t"] = (entry[0], before, entry[2])
    old_tracker.registry.register("u", "U.")  # a change, so that checkers drop cached entries
    new_tracker = Tracker({"null": _Null()}, validation="warn")
    new_tracker.register("t", "T.", schema=SCHEMA)
    fields_tracker = Tracker({"null": _Null()}, validation="warn")
    fields_tracker.register("t", "T.", FIELDS)

    fields_emit = per_event(lambda: fields_tracker.emit("t", DATA), events)
    rows = [
        (
            "validator alone",
            per_event(lambda: before(DATA), events),
            per_event(lambda: after(DATA), events),
        ),
        (
            "emit, a schema= type",
            per_event(lambda: old_tracker.emit("t", DATA), events),
            per_event(lambda: new_tracker.emit("t", DATA), events),
        ),
        ("emit, a fields= type (unchanged code)", fields_emit, fields_emit),
    ]
    print(f"{events:,} events, best of 5 repeats, microseconds per event\n")
    print("| what | 5.0.0: fields only | now: fields + JSON Schema | ratio |")
    print("|---|---|---|---|")
    for name, old, new in rows:
        print(f"| {name} | {old:.2f} | {new:.2f} | x{new / old:.2f} |")


if __name__ == "__main__":
    main()
