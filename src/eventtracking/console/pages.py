"""The console's HTML: one layout, four pages (live, charts, catalogue, delivery).

Pages are plain server-rendered HTML with inline SVG; the only script is
``static/console.js``, which runs the live feed. Every value that comes from
the store is escaped. Links are relative to `base`, the prefix the console is
mounted under (empty for ``eventtracking serve``), so the same pages work
inside a Django project.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from ..catalog.build import Catalogue
from ..delivery.deadletter import DeadLetter
from . import svg
from .charts import BUCKETS, RANGES, Series, Window
from .filters import Filter
from .health import Health, letter_time

TABS = (("", "Live"), ("charts", "Charts"), ("catalogue", "Catalogue"), ("delivery", "Delivery"))


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def layout(base: str, active: str, title: str, body: str, *, store: str, notice: str = "") -> str:
    """A whole page: header with the tabs, the store's name, an optional notice, then `body`."""
    tabs = "".join(
        f'<a href="{_e(base)}/{path}" class="tab{" active" if path == active else ""}">{label}</a>'
        for path, label in TABS
    )
    banner = f'<p class="notice" role="alert">{_e(notice)}</p>' if notice else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)} · eventtracking console</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{_e(base)}/static/console.css"></head>'
        f'<body data-base="{_e(base)}"><header><strong>eventtracking</strong>'
        f'<nav>{tabs}</nav><span class="store" title="store">{_e(store)}</span></header>'
        f"<main>{banner}{body}</main></body></html>"
    )


def filter_form(action: str, selected: Filter, extra: str = "") -> str:
    """The name-glob and key=value boxes every page shares."""
    names = ", ".join(selected.names)
    where = " ".join(f"{s}.{k}={v}" for s, k, v in selected.fields)
    return (
        f'<form class="filters" method="get" action="{_e(action)}">'
        f'<label>name <input name="name" id="f-name" value="{_e(names)}"'
        ' placeholder="edx.video.* , problem_check"></label>'
        f'<label>fields <input name="where" id="f-where" value="{_e(where)}"'
        ' placeholder="user_id=10938 data.video_id=v1"></label>'
        f'{extra}<button type="submit" id="f-apply">Apply</button></form>'
    )


def live_page(base: str, selected: Filter, store: str, notice: str = "") -> str:
    """The live view: history then new events as they arrive (console.js), each expandable."""
    stream_params = urlencode(selected.as_params())
    body = (
        filter_form(f"{base}/", selected)
        + f'<p class="status" id="live-status" data-filter="{_e(selected.describe())}">'
        "connecting…</p>"
        f'<ol id="events" class="events" data-query="{_e(stream_params)}"></ol>'
        f'<script src="{_e(base)}/static/console.js"></script>'
    )
    return layout(base, "", "Live", body, store=store, notice=notice)


def _options(current: str, choices: Sequence[str]) -> str:
    return "".join(
        f'<option value="{_e(c)}"{" selected" if c == current else ""}>{_e(c)}</option>'
        for c in choices
    )


def charts_page(
    base: str,
    selected: Filter,
    window: Window,
    series: Series,
    types: Sequence[tuple[str, int]],
    field: str,
    values: Sequence[tuple[str, int]],
    store: str,
) -> str:
    """Rates per type over the window, top types, top values of one field."""
    bucket_name = next(name for name, seconds in BUCKETS.items() if seconds == window.bucket)
    extra = (
        f'<label>range <select name="range" id="f-range">{_options(window.label, list(RANGES))}'
        f'</select></label><label>per <select name="bucket" id="f-bucket">'
        f"{_options(bucket_name, list(BUCKETS))}</select></label>"
        f'<label>values of <input name="field" id="f-field" value="{_e(field)}"></label>'
    )
    anchored = " (the store has nothing newer: the range ends at its newest event)"
    caption = (
        f"{sum(series.totals.values())} events from {window.start:%Y-%m-%d %H:%M} to "
        f"{window.end:%Y-%m-%d %H:%M} UTC, per {bucket_name}"
        f"{anchored if window.anchored_to_data else ''}; filter: {selected.describe()}"
    )
    body = (
        filter_form(f"{base}/charts", selected, extra)
        + f'<section><h2>Events per {bucket_name}</h2><p class="caption">{_e(caption)}</p>'
        + svg.stacked_bars(series.starts, series.counts, window.bucket)
        + '</section><div class="pair"><section><h2>Top types</h2>'
        + (svg.hbars(types, "top-types") if types else "<p>No events in this range.</p>")
        + f"</section><section><h2>Top values of {_e(field)}</h2>"
        + (svg.hbars(values, "top-values") if values else "<p>No values in this range.</p>")
        + "</section></div>"
    )
    return layout(base, "charts", "Charts", body, store=store)


def catalogue_page(
    base: str, catalogue: Catalogue, sparks: dict[str, list[int]], store: str
) -> str:
    """Every event type: documented or not, count, a 24-hour sparkline, and drift."""
    rows = []
    for entry in catalogue.events:
        doc = entry.current
        state = (
            f'<span class="ok">documented</span> <small>{_e(doc.id[:12])}</small>'
            if doc
            else '<span class="warn">undocumented</span>'
        )
        drift = []
        if entry.undocumented_fields:
            drift.append("fields not documented: " + ", ".join(entry.undocumented_fields))
        if entry.unseen_fields:
            drift.append("documented, never seen: " + ", ".join(entry.unseen_fields))
        if not doc and entry.count:
            drift.append("stored but never registered")
        spark = svg.sparkline(entry.name, sparks.get(entry.name, [0] * 24))
        rows.append(
            f'<tr data-name="{_e(entry.name)}" data-count="{entry.count}"'
            f' data-drift="{"yes" if drift else "no"}"><td><code>{_e(entry.name)}</code>'
            f'<div class="desc">{_e(doc.description if doc else "")}</div></td>'
            f'<td>{state}</td><td class="num">{entry.count}</td><td>{spark}</td>'
            f'<td class="drift">{"<br>".join(_e(d) for d in drift) or "none"}</td></tr>'
        )
    drifted = sum(1 for e in catalogue.events if e.undocumented_fields or e.unseen_fields)
    summary = (
        f"{len(catalogue.events)} event types, {len(catalogue.unregistered)} stored but "
        f"undocumented, {drifted} with field drift; sparklines: events per hour over the "
        "24 hours up to the newest event"
    )
    body = (
        f'<h2>Catalogue</h2><p class="caption">{_e(summary)}</p>'
        '<table id="catalogue"><thead><tr><th>type</th><th>documentation</th><th>events</th>'
        "<th>last 24 h</th><th>documented vs observed</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    return layout(base, "catalogue", "Catalogue", body, store=store)


def _card(label: str, value: object, key: str) -> str:
    return f'<div class="card" data-metric="{key}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def delivery_page(
    base: str,
    health: Health,
    letters: Sequence[tuple[str, DeadLetter]],
    allow_replay: bool,
    store: str,
    csrf_input: str = "",
    notice: str = "",
) -> str:
    """Counters of every delivery worker, drops by reason, and the dead letters."""
    dropped = health.dropped()
    cards = "".join(
        [
            _card("queue depth", health.queue_depth, "queue_depth"),
            _card("delivered", health.total("delivered"), "delivered"),
            _card("retried", health.total("retried"), "retried"),
            _card("dropped", sum(dropped.values()), "dropped"),
            _card("dead letters", health.dead_total, "dead_letters"),
        ]
    )
    drops = ", ".join(f"{reason}: {count}" for reason, count in sorted(dropped.items()))
    workers = "".join(
        f'<tr data-backend="{_e(w.get("name"))}"><td>{_e(w.get("name"))}</td>'
        f"<td>{_e(w.get('pid'))}{'' if w.get('alive', True) else ' (gone)'}</td>"
        f"<td>{_e(w.get('source', ''))}</td><td>{_e(w.get('mode'))}</td>"
        f"<td>{_e(w.get('circuit'))}</td>"
        + "".join(
            f'<td class="num">{_e(w.get(k, 0))}</td>'
            for k in ("emitted", "delivered", "retried", "dead_lettered", "queue_depth")
        )
        + f"<td>{_e(', '.join(f'{r}={c}' for r, c in sorted((w.get('dropped') or {}).items())))}"
        "</td></tr>"
        for w in health.workers
    )
    heads = "backend pid source mode circuit emitted delivered retried dead queue dropped"
    worker_table = (
        '<table id="workers"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in heads.split())
        + f"</tr></thead><tbody>{workers}</tbody></table>"
        if health.workers
        else "<p>No delivery worker has reported (none running, or no journal directory).</p>"
    )
    letter_rows = []
    for path, letter in letters:
        button = ""
        if allow_replay:
            button = (
                f'<form method="post" action="{_e(base)}/delivery/replay">{csrf_input}'
                f'<input type="hidden" name="store" value="{_e(path)}">'
                f'<input type="hidden" name="id" value="{letter.id}">'
                '<button type="submit">replay</button></form>'
            )
        event_json = json.dumps(letter.event, indent=2, ensure_ascii=False, default=str)
        letter_rows.append(
            f'<tr data-letter="{letter.id}"><td>{letter.id}</td><td>{_e(letter.backend)}</td>'
            f"<td><code>{_e(letter.name or '')}</code></td><td class='num'>{letter.attempts}</td>"
            f"<td>{_e(letter_time(letter.last_failure))}</td><td>{_e(letter.reason)}</td>"
            f"<td><details><summary>JSON</summary><pre>{_e(event_json)}</pre></details></td>"
            f"<td>{button}</td></tr>"
        )
    mode = (
        "replay allowed (started with replay enabled)"
        if allow_replay
        else "read-only: replay is off (serve --allow-replay, or ALLOW_REPLAY in Django)"
    )
    letter_table = (
        '<table id="dead-letters"><thead><tr><th>id</th><th>backend</th><th>name</th>'
        "<th>attempts</th><th>last failure (UTC)</th><th>reason</th><th>event</th><th></th>"
        f"</tr></thead><tbody>{''.join(letter_rows)}</tbody></table>"
        if letter_rows
        else "<p>No dead letters.</p>"
    )
    if allow_replay:
        letter_table += "".join(
            f'<form method="post" action="{_e(base)}/delivery/replay" class="replay-all">'
            f'{csrf_input}<input type="hidden" name="store" value="{_e(path)}">'
            f'<button type="submit">replay all {sum(counts.values())} in {_e(path)}</button></form>'
            for path, counts in health.dead.items()
            if counts
        )
    problems = "".join(f'<p class="warn">{_e(p)}</p>' for p in health.problems)
    body = (
        f'<h2>Delivery health</h2><div class="cards">{cards}</div>'
        f'<p class="caption" id="drops">dropped by reason: {_e(drops or "none")}</p>'
        f"{problems}{worker_table}"
        f'<h2>Dead letters</h2><p class="caption" id="replay-mode">{_e(mode)}</p>{letter_table}'
    )
    return layout(base, "delivery", "Delivery", body, store=store, notice=notice)


def error_page(base: str, status: int, message: str, store: str) -> str:
    """A page that says what was wrong with the request."""
    body = f'<h2>{status}</h2><p class="error" id="error">{_e(message)}</p>'
    return layout(base, "", "Error", body, store=store)
