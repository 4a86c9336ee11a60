/*
 * eventtracking browser client: no build step, no dependencies.
 *
 *   <script src="{% static 'eventtracking/tracker.js' %}"
 *           data-endpoint="{% url 'eventtracking:events' %}"></script>
 *   <script>
 *     eventtracking.enterContext('page', {section: 'courseware'});
 *     eventtracking.emit('client.video.played', {video_id: 'v1'});
 *   </script>
 *
 * Events are queued and sent in batches (every `flushInterval` ms or when
 * `batchSize` are waiting) as JSON with the CSRF token from the `csrftoken`
 * cookie in the X-CSRFToken header. A failed send (network error, 408, 429,
 * 5xx) is retried with exponential backoff and jitter, honouring Retry-After;
 * other 4xx answers mean the events are wrong and they are dropped with a
 * console warning. When the page is hidden or left (visibilitychange,
 * pagehide) whatever is queued goes with navigator.sendBeacon, as a form
 * with the fields `csrfmiddlewaretoken` and `events`.
 *
 * Options (data-* attributes of the script tag, or `new EventTracker({...})`):
 * endpoint, csrfCookieName ('csrftoken'), csrfToken (when the cookie is
 * HttpOnly), batchSize (20), flushInterval (1000), maxQueue (1000),
 * maxRetryDelay (30000).
 */
(function (global) {
  'use strict';

  var RETRYABLE = {408: true, 429: true};
  var BEACON_MAX_BYTES = 60000;

  function EventTracker(options) {
    options = options || {};
    this.endpoint = options.endpoint || '/tracking/events';
    this.csrfCookieName = options.csrfCookieName || 'csrftoken';
    this.csrfToken = options.csrfToken || null;
    this.batchSize = Number(options.batchSize) || 20;
    this.flushInterval = options.flushInterval === undefined ? 1000 : Number(options.flushInterval);
    this.maxQueue = Number(options.maxQueue) || 1000;
    this.maxRetryDelay = Number(options.maxRetryDelay) || 30000;
    this.stats = {emitted: 0, sent: 0, beaconed: 0, retries: 0, dropped: 0};
    this._queue = [];
    this._contexts = [];
    this._timer = null;
    this._sending = null;
    this._attempt = 0;
    this._retryAt = 0;
    var self = this;
    if (global.document && global.addEventListener) {
      global.document.addEventListener('visibilitychange', function () {
        if (global.document.visibilityState === 'hidden') { self.flushBeacon(); }
      });
      global.addEventListener('pagehide', function () { self.flushBeacon(); });
    }
  }

  /** Queue an event `name` with `data` (an object); the page contexts are added now. */
  EventTracker.prototype.emit = function (name, data) {
    var event = {
      name: String(name),
      data: data && typeof data === 'object' ? data : {},
      context: this._mergedContext(),
      page: global.location ? global.location.href : undefined,
      timestamp: new Date().toISOString()
    };
    this.stats.emitted += 1;
    this._queue.push(event);
    if (this._queue.length > this.maxQueue) {
      this._queue.shift();
      this.stats.dropped += 1;
    }
    if (this._queue.length >= this.batchSize) {
      this.flush();
    } else {
      this._schedule(this.flushInterval);
    }
  };

  /** Add context `name` to every later event; entering a name again replaces it. */
  EventTracker.prototype.enterContext = function (name, ctx) {
    this.exitContext(name);
    this._contexts.push([name, ctx || {}]);
  };

  /** Stop adding context `name`. */
  EventTracker.prototype.exitContext = function (name) {
    this._contexts = this._contexts.filter(function (entry) { return entry[0] !== name; });
  };

  /** Events waiting to be sent. */
  EventTracker.prototype.pending = function () {
    return this._queue.length;
  };

  /** Send what is queued now; resolves when the queue is empty or a send must wait. */
  EventTracker.prototype.flush = function () {
    var self = this;
    if (this._sending) { return this._sending; }
    if (!this._queue.length || Date.now() < this._retryAt) { return Promise.resolve(); }
    clearTimeout(this._timer);
    this._timer = null;
    var batch = this._queue.splice(0, this.batchSize);
    this._sending = this._post(batch).then(function (response) {
      self._sending = null;
      if (response.ok) {
        self._attempt = 0;
        self.stats.sent += batch.length;
        return self._queue.length ? self.flush() : undefined;
      }
      if (RETRYABLE[response.status] || response.status >= 500) {
        return self._retry(batch, response.headers.get('Retry-After'));
      }
      self.stats.dropped += batch.length;
      return response.text().then(function (text) {
        if (global.console) { global.console.warn('eventtracking: events refused:', text); }
      });
    }, function () {
      self._sending = null;
      return self._retry(batch, null);
    });
    return this._sending;
  };

  /** Send everything queued with navigator.sendBeacon (for a page that is going away). */
  EventTracker.prototype.flushBeacon = function () {
    clearTimeout(this._timer);
    this._timer = null;
    if (!this._queue.length) { return; }
    if (!global.navigator || !global.navigator.sendBeacon) {
      this.flush();
      return;
    }
    while (this._queue.length) {
      var count = Math.min(this.batchSize, this._queue.length);
      var body = this._form(this._queue.slice(0, count));
      while (count > 1 && body.toString().length > BEACON_MAX_BYTES) {
        count = Math.ceil(count / 2);
        body = this._form(this._queue.slice(0, count));
      }
      if (!global.navigator.sendBeacon(this.endpoint, body)) { return; }
      this._queue.splice(0, count);
      this.stats.beaconed += count;
    }
  };

  EventTracker.prototype._post = function (batch) {
    return global.fetch(this.endpoint, {
      method: 'POST',
      credentials: 'same-origin',
      keepalive: true,
      headers: {'Content-Type': 'application/json', 'X-CSRFToken': this._token()},
      body: JSON.stringify({events: batch})
    });
  };

  EventTracker.prototype._form = function (batch) {
    var form = new URLSearchParams();
    form.set('csrfmiddlewaretoken', this._token());
    form.set('events', JSON.stringify({events: batch}));
    return form;
  };

  EventTracker.prototype._retry = function (batch, retryAfter) {
    this._queue = batch.concat(this._queue);
    this._attempt += 1;
    this.stats.retries += 1;
    var delay = Math.min(this.maxRetryDelay, 500 * Math.pow(2, this._attempt - 1));
    delay = delay / 2 + Math.random() * delay / 2;  // jitter: clients do not retry in step
    var seconds = Number(retryAfter);
    if (retryAfter && !isNaN(seconds)) { delay = Math.max(delay, seconds * 1000); }
    this._retryAt = Date.now() + delay;
    clearTimeout(this._timer);
    this._timer = null;
    this._schedule(delay);
  };

  EventTracker.prototype._schedule = function (delay) {
    var self = this;
    if (this._timer !== null) { return; }
    this._timer = setTimeout(function () {
      self._timer = null;
      self._retryAt = 0;
      self.flush();
    }, delay);
  };

  EventTracker.prototype._mergedContext = function () {
    var merged = {};
    this._contexts.forEach(function (entry) {
      Object.keys(entry[1]).forEach(function (key) { merged[key] = entry[1][key]; });
    });
    return merged;
  };

  EventTracker.prototype._token = function () {
    if (this.csrfToken) { return this.csrfToken; }
    var prefix = this.csrfCookieName + '=';
    var parts = global.document ? global.document.cookie.split(';') : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      if (part.indexOf(prefix) === 0) { return decodeURIComponent(part.slice(prefix.length)); }
    }
    return '';
  };

  global.EventTracker = EventTracker;
  if (!global.eventtracking) {
    var script = global.document && global.document.currentScript;
    var data = (script && script.dataset) || {};
    global.eventtracking = new EventTracker({
      endpoint: data.endpoint,
      csrfCookieName: data.csrfCookie,
      batchSize: data.batchSize,
      flushInterval: data.flushInterval
    });
  }
})(window);
