"""Charts as inline SVG, drawn here: stacked bars over time, horizontal bars, sparklines.

Every drawn mark carries its numbers as data attributes (``data-name``,
``data-bucket``, ``data-count``), so a test or a script reads exactly what
the chart shows. All text is escaped. In the stacked chart each series
takes the next colour of a fixed palette (the busiest first, so the ten
colours never repeat among the shown types) and "(other)" is grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Final

PALETTE: Final = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


OTHER_COLOUR: Final = "#9aa0a8"
BAR_COLOUR: Final = PALETTE[0]


def colours(names: Sequence[str]) -> dict[str, str]:
    """A distinct palette colour for each name in order; "(other)" grey."""
    picked, i = {}, 0
    for name in names:
        if name == "(other)":
            picked[name] = OTHER_COLOUR
        else:
            picked[name] = PALETTE[i % len(PALETTE)]
            i += 1
    return picked


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def _tick(moment: datetime, bucket: int) -> str:
    return moment.strftime("%H:%M" if bucket < 3600 else "%m-%d %H:00")


def stacked_bars(
    starts: Sequence[datetime],
    counts: dict[str, list[int]],
    bucket: int,
    width: int = 960,
    height: int = 260,
) -> str:
    """Counts per bucket, one colour per name, stacked; a legend below."""
    left, bottom, top = 48, 24, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    columns = [sum(column) for column in zip(*counts.values(), strict=True)] if counts else []
    colour = colours(list(counts))
    peak = max(columns, default=0) or 1
    slot = plot_w / max(1, len(starts))
    parts = [
        f'<svg class="chart stacked" viewBox="0 0 {width} {height + 22 * ((len(counts) + 2) // 3)}"'
        f' role="img" aria-label="events per bucket" data-peak="{peak}"'
        f' data-total="{sum(columns)}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}"'
        ' class="axis"/>',
        f'<text x="{left - 6}" y="{top + 10}" class="label" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" class="label" text-anchor="end">0</text>',
    ]
    for i, start in enumerate(starts):
        y: float = top + plot_h
        for name, values in counts.items():
            count = values[i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect class="bar" x="{left + i * slot:.2f}" y="{y:.2f}"'
                f' width="{max(slot - 1, 0.5):.2f}" height="{h:.2f}" fill="{colour[name]}"'
                f' data-name="{_a(name)}" data-bucket="{start.isoformat()}"'
                f' data-count="{count}"><title>{_a(name)} {_a(_tick(start, bucket))}: '
                f"{count}</title></rect>"
            )
    every = max(1, len(starts) // 8)
    for i in range(0, len(starts), every):
        x = left + i * slot
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6}" class="label">'
            f"{_a(_tick(starts[i], bucket))}</text>"
        )
    for n, name in enumerate(counts):
        x, y = left + (n % 3) * (plot_w / 3), height + 16 + 22 * (n // 3)
        shown = name if len(name) <= 38 else name[:37] + "…"
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{colour[name]}"/>'
            f'<text x="{x + 16:.1f}" y="{y}" class="legend" data-name="{_a(name)}"'
            f' data-total="{sum(counts[name])}">{_a(shown)} ({sum(counts[name])})'
            f"<title>{_a(name)}</title></text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def hbars(rows: Sequence[tuple[str, int]], kind: str, width: int = 460) -> str:
    """One horizontal bar per (label, count), in the given order."""
    bar_h, gap, label_w = 18, 6, 190
    height = max(1, len(rows)) * (bar_h + gap)
    peak = max((count for _, count in rows), default=0) or 1
    parts = [
        f'<svg class="chart hbars {kind}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="{_a(kind)}">'
    ]
    for i, (label, count) in enumerate(rows):
        y = i * (bar_h + gap)
        w = (width - label_w - 60) * count / peak
        shown = label if len(label) <= 28 else label[:27] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" class="label" text-anchor="end">{_a(shown)}'
            f"<title>{_a(label)}</title></text>"
            f'<rect class="bar" x="{label_w}" y="{y}" width="{max(w, 1):.2f}" height="{bar_h}"'
            f' fill="{BAR_COLOUR}" data-label="{_a(label)}" data-count="{count}"/>'
            f'<text x="{label_w + w + 4:.2f}" y="{y + 13}" class="label">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(name: str, values: Sequence[int], width: int = 120, height: int = 24) -> str:
    """A small line of `values` (hourly counts), oldest on the left."""
    peak = max(values, default=0) or 1
    step = width / max(1, len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (height - 4) * v / peak:.1f}" for i, v in enumerate(values)
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' data-name="{_a(name)}" data-total="{sum(values)}"'
        f' data-values="{",".join(str(v) for v in values)}">'
        f'<polyline points="{points}" fill="none" stroke="{BAR_COLOUR}" stroke-width="1.5"/>'
        "</svg>"
    )
