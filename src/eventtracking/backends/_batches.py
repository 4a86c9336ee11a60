"""Request bodies for HTTP sinks: encoded events split by count and size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def chunks(
    items: Sequence[bytes], max_count: int, max_bytes: int | None, overhead: int = 2
) -> Iterator[list[bytes]]:
    """Split encoded items into runs of at most `max_count` items and about `max_bytes` bytes.

    `overhead` is the bytes the body adds around the joined items. An item
    larger than `max_bytes` on its own travels alone.
    """
    run: list[bytes] = []
    size = overhead
    for item in items:
        extra = len(item) + (1 if run else 0)  # the comma between items
        if run and (len(run) >= max_count or (max_bytes is not None and size + extra > max_bytes)):
            yield run
            run, size, extra = [], overhead, len(item)
        run.append(item)
        size += extra
    if run:
        yield run
