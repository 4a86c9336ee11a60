"""What a `StreamConsumer` did: counts, rate, the group's lag and pending entries."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ConsumeStats:
    """What a consumer did; `lag` and `pending` are the group's, as last seen."""

    read: int = 0
    written: int = 0
    acked: int = 0
    claimed: int = 0
    dead_lettered: int = 0
    trimmed: int = 0
    retries: int = 0
    forgotten: int = 0  # idle consumers with nothing pending, removed from the group
    lag: int | None = None
    pending: int | None = None
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The figures as a plain dict (for JSON)."""
        out = asdict(self)
        out.pop("started")
        return out

    def line(self) -> str:
        """One line for a log: counts, rate, lag and pending."""
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.written} written ({rate:.0f}/s), {self.acked} acked, "
            f"{self.claimed} claimed, {self.dead_lettered} dead-lettered, "
            f"{self.trimmed} trimmed, {self.retries} retries, "
            f"{self.forgotten} idle consumers forgotten; "
            f"lag {_or_unknown(self.lag)}, pending {_or_unknown(self.pending)}"
        )


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)
