"""The journal's file format: segments of length-prefixed, checksummed records.

A segment file starts with the 8-byte `MAGIC`, then holds records back to
back, each ``<u32 length><u32 ~crc32(payload)><payload>`` (little-endian;
the payload is one event as JSON). The checksum is stored inverted so that
no record starts with eight zero bytes: zeros mark where a preallocated
segment's written part ends. Segments are only ever appended to, by one
process, and deleted whole once delivered.

`read_segment` stops at the first record that is cut short (a torn write:
the process died mid-append) or whose checksum does not match (corruption),
and says so; the caller skips the rest of that segment with a warning. So
recovery always yields a prefix of what was written to each segment, and
never raises for bad contents.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal

MAGIC: Final = b"ETJRNL\x00\x01"
RECORD_HEADER: Final = struct.Struct("<II")
MAX_RECORD: Final = 64 * 1024 * 1024  # a longer length field can only be corruption
_CHUNK: Final = 1 << 20
_INVERT: Final = 0xFFFFFFFF

Status = Literal["more", "end", "corrupt"]


def frame(payload: bytes) -> bytes:
    """The bytes that store `payload` as one record."""
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload) ^ _INVERT) + payload


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class CorruptRecord(Exception):
    """A record that is torn or fails its checksum (raised and caught internally, for logs)."""

    def __init__(self, path: Path, offset: int, problem: str) -> None:
        super().__init__(f"{path}: record at byte {offset}: {problem}; rest of segment skipped")
        self.path = path
        self.offset = offset


@dataclass
class SegmentRead:
    """The records read, where the next read starts, and why reading stopped.

    `status` is ``more`` when a limit stopped it, ``end`` at the readable end,
    and ``corrupt`` at a torn or corrupt record (`problem` says which).
    """

    payloads: list[bytes]
    offset: int
    status: Status
    problem: str = ""


def read_segment(
    path: Path,
    start: int,
    end: int | None = None,
    max_records: int = 1000,
    max_bytes: int | None = None,
) -> SegmentRead:
    """Read whole records of the segment at `path` from byte `start` up to byte `end`.

    `end` is where a live segment's readable data stops (its writer's last
    complete record); None means the file's size (a sealed segment). At most
    `max_records` records and about `max_bytes` payload bytes are returned
    (always at least one record when one is there). A missing file reads as
    an empty, finished segment.
    """
    payloads: list[bytes] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; open() may raise
    except FileNotFoundError:
        return SegmentRead(payloads, start, "end")
    with handle:
        size = os.fstat(handle.fileno()).st_size
        limit = size if end is None else min(end, size)
        pos = start
        if pos < len(MAGIC):
            head = handle.read(len(MAGIC))
            if not any(head):  # created, never written: nothing was lost
                return SegmentRead(payloads, 0, "end")
            if head != MAGIC:
                problem = "torn segment header" if MAGIC.startswith(head) else "not a segment"
                return SegmentRead(payloads, 0, "corrupt", problem)
            pos = len(MAGIC)
        total = 0
        buf = b""
        base = pos  # file offset of buf[0]
        i = 0
        while len(payloads) < max_records and (max_bytes is None or total < max_bytes):
            here = base + i
            if here >= limit:
                return SegmentRead(payloads, here, "end")
            if i + RECORD_HEADER.size > len(buf) or _incomplete(buf, i):
                if here + RECORD_HEADER.size > limit:
                    handle.seek(here)
                    if not any(handle.read(limit - here)):  # the zeroed rest of a segment
                        return SegmentRead(payloads, here, "end")
                    return SegmentRead(payloads, here, "corrupt", "torn record header")
                length = _peek_length(handle, here)
                if length > MAX_RECORD:
                    return SegmentRead(payloads, here, "corrupt", f"impossible length {length}")
                if here + RECORD_HEADER.size + length > limit:
                    return SegmentRead(payloads, here, "corrupt", "torn record")
                handle.seek(here)
                buf = handle.read(max(_CHUNK, RECORD_HEADER.size + length))
                base, i = here, 0
            length, check = RECORD_HEADER.unpack_from(buf, i)
            if length == 0 and check == 0:
                return SegmentRead(payloads, here, "end")  # the unwritten, zeroed rest
            payload = buf[i + RECORD_HEADER.size : i + RECORD_HEADER.size + length]
            if zlib.crc32(payload) ^ _INVERT != check:
                return SegmentRead(payloads, here, "corrupt", "checksum mismatch")
            payloads.append(payload)
            total += length
            i += RECORD_HEADER.size + length
        return SegmentRead(payloads, base + i, "more")


def _incomplete(buf: bytes, i: int) -> bool:
    """True when the record starting at buf[i] (whose header is in buf) runs past buf."""
    length: int = RECORD_HEADER.unpack_from(buf, i)[0]
    return length > MAX_RECORD or i + RECORD_HEADER.size + length > len(buf)


def _peek_length(handle: BinaryIO, offset: int) -> int:
    """The length field of the record header at `offset`."""
    handle.seek(offset)
    head = handle.read(RECORD_HEADER.size)
    if len(head) < RECORD_HEADER.size:
        return MAX_RECORD + 1
    length: int = RECORD_HEADER.unpack(head)[0]
    return length


def count_records(path: Path) -> tuple[int, int, bool]:
    """(records, payload bytes, ended cleanly) of a whole segment (for inspection and tests)."""
    offset, records, size = 0, 0, 0
    while True:
        read = read_segment(path, offset, max_records=10_000)
        records += len(read.payloads)
        size += sum(len(p) for p in read.payloads)
        offset = read.offset
        if read.status != "more":
            return records, size, read.status == "end"
