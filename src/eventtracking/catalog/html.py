"""Render a catalogue as one self-contained HTML file with search and filters.

Everything (styles, script, content) is inline, so the file works offline
and can be attached to a ticket. The page is complete without JavaScript;
the script only filters: a search box (name, description, field names) and
buttons for undocumented types, drift and PII. ``#q=TEXT`` in the URL fills
the search box on load.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from ..serialization import dumps
from .build import Catalogue, TypeEntry

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{position:sticky;top:0;background:#1d2330;color:#fff;padding:12px 24px;z-index:1}
header h1{font-size:18px;margin:0 0 8px}
#q{width:min(560px,90%);padding:6px 10px;font-size:15px;border-radius:4px;border:0}
.filters button{margin:6px 6px 0 0;padding:4px 10px;border-radius:12px;border:1px solid #8a93a6;
background:#2b3345;color:#fff;cursor:pointer}
.filters button.on{background:#4f7cff;border-color:#4f7cff}
main{padding:16px 24px;max-width:1100px}
.type{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;margin:0 0 14px}
.type h2{font-size:16px;margin:0 0 4px;font-family:ui-monospace,monospace}
.badge{font:12px system-ui;padding:1px 7px;border-radius:9px;margin-left:6px;background:#e8ebf1}
.badge.warn{background:#ffe3b3}.badge.bad{background:#ffc9c9}.badge.pii{background:#e4d7ff}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}
th,td{border-bottom:1px solid #eceef2;padding:3px 6px;text-align:left;vertical-align:top}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f3f4f7;padding:8px;overflow:auto}.muted{color:#69728a}
#count{margin-left:10px;font-size:13px;color:#c9d0de}
"""

_SCRIPT = """
(function(){
  var q=document.getElementById('q'), cards=[].slice.call(document.querySelectorAll('.type'));
  var active={}, count=document.getElementById('count');
  function apply(){
    var text=q.value.trim().toLowerCase(), shown=0;
    cards.forEach(function(card){
      var ok=!text||card.getAttribute('data-search').indexOf(text)>=0;
      for(var f in active){ if(active[f]&&card.getAttribute('data-'+f)!=='1'){ok=false;} }
      card.hidden=!ok; if(ok){shown++;}
    });
    count.textContent=shown+' of '+cards.length+' types shown';
  }
  [].forEach.call(document.querySelectorAll('.filters button'),function(b){
    b.addEventListener('click',function(){
      var f=b.getAttribute('data-filter'); active[f]=!active[f];
      b.classList.toggle('on',active[f]); apply();
    });
  });
  q.addEventListener('input',apply);
  var m=/[#&]q=([^&]*)/.exec(location.hash); if(m){q.value=decodeURIComponent(m[1]);}
  apply();
})();
"""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _card(entry: TypeEntry, has_store: bool) -> str:
    current = entry.current
    words = [entry.name]
    badges = []
    pii = bool(current and any(spec.pii for spec in current.fields))
    drift = bool(entry.undocumented_fields or entry.unseen_fields or (not current and entry.count))
    if current is None:
        badges.append('<span class="badge bad">undocumented</span>')
    else:
        words.append(current.description)
        words += [spec.name for spec in current.fields]
        badges.append(f'<span class="badge">{len(entry.versions)} version(s)</span>')
    if pii:
        badges.append('<span class="badge pii">PII</span>')
    if drift and current is not None:
        badges.append('<span class="badge warn">drift</span>')
    if has_store and entry.kind == "event":
        badges.append(f'<span class="badge">{entry.count:,} stored</span>')
    parts = [
        f'<section class="type" data-kind="{entry.kind}" '
        f'data-search="{escape(" ".join(words).lower())}" '
        f'data-undocumented="{int(current is None)}" data-drift="{int(drift)}" '
        f'data-pii="{int(pii)}">',
        f"<h2>{escape(entry.name)}{''.join(badges)}</h2>",
    ]
    if current is not None:
        parts.append(f"<p>{escape(current.description) or '<i>No description.</i>'}</p>")
        if current.fields:
            rows = []
            for spec in current.fields:
                seen = entry.observed_fields.get(spec.name, 0)
                share = f"{seen / entry.count:.0%}" if entry.count else ""
                allowed = ", ".join(map(repr, spec.enum)) if spec.enum else ""
                rows.append(
                    "<tr>"
                    + "".join(
                        f"<td>{escape(str(cell))}</td>"
                        for cell in (
                            spec.name,
                            " or ".join(spec.type) or "any",
                            "yes" if spec.required else "",
                            "yes" if spec.pii else "",
                            spec.description,
                            allowed,
                            share,
                        )
                    )
                    + "</tr>"
                )
            parts.append(
                "<table><tr><th>field</th><th>type</th><th>required</th><th>PII</th>"
                "<th>description</th><th>allowed</th><th>seen in</th></tr>"
                + "".join(rows)
                + "</table>"
            )
        items = []
        for i, version in enumerate(entry.versions):
            label = " <b>current</b>" if version.id == current.id else ""
            changes = ""
            if i > 0 and entry.changes[i - 1]:
                changes = (
                    " ("
                    + ", ".join(
                        f"{c.change} <code>{escape(c.field)}</code>" for c in entry.changes[i - 1]
                    )
                    + ")"
                )
            items.append(
                f"<li><code>{version.id}</code>{label} registered {_when(version.registered_at)}"
                f" at <code>{escape(version.source or '?')}</code>{changes}</li>"
            )
        parts.append(f"<p class='muted'>Versions:</p><ul>{''.join(items)}</ul>")
    if has_store and entry.kind == "event":
        parts.append(
            f"<p class='muted'>{entry.count:,} stored; first seen {_when(entry.first_seen)}, "
            f"last seen {_when(entry.last_seen)}.</p>"
        )
        if entry.usual_contexts:
            usual = ", ".join(
                f"<code>{escape(k)}</code> {v:.0%}" for k, v in entry.usual_contexts.items()
            )
            parts.append(f"<p class='muted'>Context keys: {usual}</p>")
        for label, fields in (
            ("Stored but undocumented", entry.undocumented_fields),
            ("Documented but never seen", entry.unseen_fields),
        ):
            if fields:
                parts.append(f"<p>{label}: {escape(', '.join(fields))}</p>")
        if entry.example is not None:
            example = escape(dumps(entry.example).decode())
            parts.append(
                f"<details><summary>Example (PII masked)</summary><pre>{example}</pre></details>"
            )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(catalogue: Catalogue) -> str:
    """The catalogue as one self-contained HTML page."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cards = [_card(entry, catalogue.has_store) for entry in catalogue.events]
    cards += [_card(entry, False) for entry in catalogue.contexts]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Event catalogue</title><style>{_STYLE}</style></head><body>"
        "<header><h1>Event catalogue</h1>"
        "<input id='q' type='search' placeholder='Search names, descriptions, fields' autofocus>"
        "<span id='count'></span><div class='filters'>"
        "<button data-filter='undocumented'>undocumented</button>"
        "<button data-filter='drift'>drift</button>"
        "<button data-filter='pii'>PII</button></div></header>"
        f"<main><p class='muted'>Generated {now}: {len(catalogue.events)} event types, "
        f"{len(catalogue.contexts)} context types.</p>"
        + "\n".join(cards)
        + f"</main><script>{_SCRIPT}</script></body></html>"
    )
