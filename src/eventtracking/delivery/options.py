"""Delivery options, checked once at construction into typed, resolved fields.

`DeliveryBackend` owns the defaults (its signature, documented in the
README); `DeliveryOptions.resolve` validates the values it was given and
fills in what depends on the mode, raising ValueError with a message that
names the option and says what to write instead. ``journal_dir=True`` (the
default) means the default directory of `paths`, asked for only when the
mode uses a journal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

from .deadletter import DEFAULT_FILENAME
from .retry import CircuitPolicy, RetryPolicy, from_mapping

Mode = Literal["buffered", "durable", "sync", "inline"]
Overflow = Literal["block", "drop_newest", "drop_oldest", "spill"]
Fsync = Literal["always", "interval"]
DURABLE_OVERFLOW: Final = ("block", "drop_newest")
DEFAULT_BATCH: Final = 500
QUEUED: Final = ("buffered", "inline")  # modes with a memory queue (overflow applies, may spill)


def _choice(name: str, value: object, allowed: Any) -> Any:
    choices = get_args(allowed)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, not {value!r}")
    return value


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return value


def _seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        floor = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number of seconds {floor}, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def _path(name: str, value: object) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError(f"{name} must be a directory path, not {value!r}")
    return Path(value)


@dataclass(frozen=True)
class DeliveryOptions:
    """The validated options of one `DeliveryBackend` (see its docstring for meanings)."""

    mode: Mode
    journal_dir: Path | None
    journal_is_default: bool
    batch_size: int
    batch_bytes: int | None
    max_delay: float
    queue_size: int
    overflow: Overflow
    block_timeout: float
    fsync: Fsync
    fsync_interval: float
    segment_bytes: int
    disk_budget: int
    retry: RetryPolicy
    circuit: CircuitPolicy
    dead_letters: Path | None
    atexit_timeout: float
    metrics_interval: float

    @classmethod
    def resolve(
        cls,
        *,
        mode: object,
        journal_dir: object,
        default_journal: Callable[[], Path],
        batch_size: object,
        batch_bytes: object,
        max_delay: object,
        queue_size: object,
        overflow: object,
        block_timeout: object,
        fsync: object,
        fsync_interval: object,
        segment_bytes: object,
        disk_budget: object,
        retry: object,
        circuit: object,
        dead_letters: object,
        atexit_timeout: object,
        metrics_interval: object,
    ) -> DeliveryOptions:
        """Check every option, fill in mode-dependent defaults; ValueError says what to fix."""
        mode_ = _choice("mode", mode, Mode)
        is_default = journal_dir is True and mode_ != "sync"
        journal: Path | None
        if journal_dir is True:
            journal = default_journal() if is_default else None
        elif journal_dir is None or journal_dir is False:
            journal = None
        else:
            journal = _path("journal_dir", journal_dir)
        if mode_ == "durable" and journal is None:
            raise ValueError(
                "mode='durable' needs a journal: leave journal_dir out (the default directory) "
                "or give the directory"
            )
        if mode_ == "sync" and journal is not None:
            raise ValueError(
                "journal_dir is not used in mode='sync' (events are delivered in the caller's "
                "thread); remove it, or use mode='durable'"
            )
        if overflow is None:
            overflow = "spill" if mode_ in QUEUED and journal is not None else "drop_newest"
        overflow_ = _choice("overflow", overflow, Overflow)
        if overflow_ == "spill" and (mode_ not in QUEUED or journal is None):
            raise ValueError(
                "overflow='spill' needs mode='buffered' or 'inline' and a journal to spill to"
            )
        if mode_ == "durable" and overflow_ not in DURABLE_OVERFLOW:
            raise ValueError(
                f"mode='durable' accepts overflow 'block' or 'drop_newest', not {overflow_!r}: "
                "the journal already holds what does not fit in memory, and dropping a "
                "journaled event would break the promise that an emitted event is kept"
            )
        if fsync is None:
            # The record is in the journal (page cache) before emit returns: that
            # survives the process being killed, as durable mode promises, at
            # under 2x the cost of buffered mode. 'always' adds power-cut safety.
            fsync = "interval"
        fsync_ = _choice("fsync", fsync, Fsync)
        if fsync_ == "always" and mode_ != "durable":
            raise ValueError("fsync='always' applies to mode='durable' only")
        budget = _positive_int("disk_budget", disk_budget)
        segment = _positive_int("segment_bytes", segment_bytes)
        if segment > budget:
            raise ValueError(f"segment_bytes ({segment}) must not exceed disk_budget ({budget})")
        letters: Path | None
        if dead_letters is None or dead_letters is True:
            letters = None if journal is None else journal / DEFAULT_FILENAME
        elif dead_letters is False:
            letters = None
        else:
            letters = _path("dead_letters", dead_letters)
        return cls(
            mode=mode_,
            journal_dir=journal,
            journal_is_default=is_default,
            batch_size=_positive_int("batch_size", batch_size),
            batch_bytes=None if batch_bytes is None else _positive_int("batch_bytes", batch_bytes),
            max_delay=_seconds("max_delay", max_delay),
            queue_size=_positive_int("queue_size", queue_size),
            overflow=overflow_,
            block_timeout=_seconds("block_timeout", block_timeout),
            fsync=fsync_,
            fsync_interval=_seconds("fsync_interval", fsync_interval, allow_zero=False),
            segment_bytes=segment,
            disk_budget=budget,
            retry=from_mapping(RetryPolicy, retry, "retry"),
            circuit=from_mapping(CircuitPolicy, circuit, "circuit"),
            dead_letters=letters,
            atexit_timeout=_seconds("atexit_timeout", atexit_timeout),
            metrics_interval=_seconds("metrics_interval", metrics_interval),
        )


def preferred_batch_size(backend: Any) -> int:
    """The wrapped backend's ``batch_size`` (most events it writes at once), else 500."""
    size = getattr(backend, "batch_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return DEFAULT_BATCH
