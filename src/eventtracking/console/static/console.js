// The live view of the eventtracking console: history first, then new events over
// server-sent events. Everything from the store is set as text, never as HTML.
(function () {
  "use strict";
  var list = document.getElementById("events");
  var status = document.getElementById("live-status");
  if (!list || !status) { return; }
  var base = document.body.getAttribute("data-base") || "";
  var query = list.getAttribute("data-query") || "";
  var seen = new Set();
  var shown = 0;
  var LIMIT = 500;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function row(item) {
    var li = el("li", "event");
    li.setAttribute("data-name", item.name);
    if (item.id) { li.setAttribute("data-id", item.id); }
    var details = el("details");
    var summary = el("summary");
    summary.appendChild(el("time", "when", item.time.replace("T", " ").slice(0, 23)));
    summary.appendChild(el("code", "name", item.name));
    var doc = el("span", item.doc ? "doc ok" : "doc warn",
      item.doc ? "documented " + String(item.doc.id).slice(0, 12) : "undocumented");
    summary.appendChild(doc);
    details.appendChild(summary);
    var about = el("p", "docinfo");
    if (item.doc) {
      about.textContent = "Emitted under documentation version " + item.doc.id +
        (item.doc.registered_at ? " (registered " + item.doc.registered_at + ")" : "") +
        (item.doc.description ? ": " + item.doc.description : "");
    } else {
      about.textContent = "No documentation version: the type was not registered, " +
        "or the event was stored without envelope='full'.";
    }
    details.appendChild(about);
    details.appendChild(el("pre", "json", item.json));
    li.appendChild(details);
    return li;
  }

  function add(item, atTop) {
    var key = item.id || (item.name + "@" + item.time + "#" + item.pos);
    if (seen.has(key)) { return; }
    seen.add(key);
    var li = row(item);
    if (atTop) { list.insertBefore(li, list.firstChild); } else { list.appendChild(li); }
    shown += 1;
    while (list.children.length > LIMIT) { list.removeChild(list.lastChild); }
  }

  function say(text) { status.textContent = text; }

  function connect(after) {
    var url = base + "/api/stream?" + query + (query ? "&" : "") + "after=" + after;
    var source = new EventSource(url);
    source.onopen = function () { say("live: showing " + status.getAttribute("data-filter")); };
    source.onmessage = function (message) {
      add(JSON.parse(message.data), true);
      status.setAttribute("data-received", String(shown));
    };
    source.addEventListener("missed", function (message) {
      say("live (skipped " + message.data + " events that came too fast to show)");
    });
    source.onerror = function () { say("reconnecting…"); };
  }

  fetch(base + "/api/events?" + query + (query ? "&" : "") + "limit=100", {credentials: "same-origin"})
    .then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    })
    .then(function (reply) {
      if (!reply.ok) { say(reply.body.error || "the history could not be read"); return; }
      reply.body.events.forEach(function (item) { add(item, false); });
      if (reply.body.error) { say(reply.body.error); }
      connect(reply.body.position);
    })
    .catch(function (error) { say("the console could not be reached: " + error); });
})();
