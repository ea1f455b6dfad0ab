// The freshet operator dashboard (serving/dashboard/README.md): polls this server's /metrics and
// API and draws what it reads. No framework and no request to any other origin; the charts are
// drawn on <canvas> by the small LineChart below.
//
// window.freshetDashboard.state is what the page has read (the browser test reads it):
//   polls, pollErrors, lastError    rounds of polling and the latest failure
//   charts[id]                      {points, last, note} of each chart
//   user                            the watched user: id, events, recent, recs, changes, error
//   similar                         the item shown: id, items, error, updates
//   snapshots                       mode ("read-only" | "admin"), list, error
'use strict';

(function () {
  // The charts keep the last HISTORY_MS; their time axis spans the points they have, at least
  // MIN_SPAN_MS, so a page opened a moment ago does not draw a sliver at the right edge.
  const HISTORY_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const FETCH_TIMEOUT_MS = 5000;
  const TOKEN_KEY = 'freshet.adminToken';
  const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706'];

  const state = {
    intervalS: 2,
    polls: 0,
    pollErrors: 0,
    lastError: null,
    lastPollMs: 0,
    charts: {},
    user: {id: null, events: null, recent: null, recs: [], changes: 0, error: null, updates: 0},
    similar: {id: null, items: [], error: null, updates: 0},
    snapshots: {mode: 'read-only', list: null, error: null},
  };
  window.freshetDashboard = {state: state};

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------
  // Prometheus text format (version 0.0.4): samples by metric name.

  // "name{a="x",b="y"} value" -> {name, labels, value}; null for anything else.
  function parseSample(line) {
    let i = 0;
    while (i < line.length && /[A-Za-z0-9_:]/.test(line[i])) i++;
    const name = line.slice(0, i);
    if (!name) return null;
    const labels = {};
    if (line[i] === '{') {
      i++;
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('=', i);
        if (eq < 0 || line[eq + 1] !== '"') return null;
        const key = line.slice(i, eq).trim();
        let value = '';
        let j = eq + 2;
        for (; j < line.length && line[j] !== '"'; j++) {
          if (line[j] === '\\' && j + 1 < line.length) {
            j++;
            value += line[j] === 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        labels[key] = value;
        i = j + 1;
        if (line[i] === ',') i++;
      }
      i++;
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = parseFloat(rest[0]);  // "+Inf", "-Inf" and "NaN" included
    if (rest[0] === undefined || (Number.isNaN(value) && rest[0] !== 'NaN')) return null;
    return {name, labels, value};
  }

  function parseMetrics(text) {
    const samples = new Map();
    for (const line of text.split('\n')) {
      if (line === '' || line[0] === '#') continue;
      const s = parseSample(line);
      if (s === null) continue;
      if (!samples.has(s.name)) samples.set(s.name, []);
      samples.get(s.name).push(s);
    }
    return samples;
  }

  // One value: the sum over the name's series that `keep` accepts (0 when it accepts none, e.g. no
  // request has failed yet); undefined when the server does not export the name.
  function total(samples, name, keep) {
    const list = samples.get(name);
    if (!list) return undefined;
    let sum = 0;
    for (const s of list) {
      if (!keep || keep(s.labels)) sum += s.value;
    }
    return sum;
  }

  // A histogram's cumulative buckets summed over the series `keep` accepts: [[le, count]] by le.
  function buckets(samples, name, keep) {
    const list = samples.get(name + '_bucket');
    if (!list) return undefined;
    const byLe = new Map();
    for (const s of list) {
      if (keep && !keep(s.labels)) continue;
      const le = s.labels.le === '+Inf' ? Infinity : parseFloat(s.labels.le);
      byLe.set(le, (byLe.get(le) || 0) + s.value);
    }
    return Array.from(byLe.entries()).sort((a, b) => a[0] - b[0]);
  }

  // Cumulative buckets observed between two scrapes (now minus before); null after a reset.
  function bucketDelta(now, before) {
    if (!now || !before || now.length !== before.length) return null;
    const out = [];
    for (let i = 0; i < now.length; i++) {
      if (now[i][0] !== before[i][0]) return null;
      const d = now[i][1] - before[i][1];
      if (d < 0) return null;
      out.push([now[i][0], d]);
    }
    return out;
  }

  // The q-quantile of cumulative buckets, interpolated linearly inside a bucket as Prometheus'
  // histogram_quantile does; the largest finite bound when it falls in the +Inf bucket; null
  // without observations.
  function quantile(q, cumulative) {
    if (!cumulative || cumulative.length === 0) return null;
    const count = cumulative[cumulative.length - 1][1];
    if (!(count > 0)) return null;
    const rank = q * count;
    let lowerBound = 0;
    let lowerCount = 0;
    for (const [le, c] of cumulative) {
      if (c >= rank) {
        if (le === Infinity) return lowerBound;
        if (c === lowerCount) return le;
        return lowerBound + (le - lowerBound) * ((rank - lowerCount) / (c - lowerCount));
      }
      lowerBound = le;
      lowerCount = c;
    }
    return lowerBound;
  }

  // ------------------------------------------------------------------------------------------
  // Formatting.

  // A table row of [text, numeric] cells (numeric ones right-aligned).
function tableRow(cells) {
  const tr = document.createElement('tr');
  for (const [text, num] of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    if (num) td.className = 'num';
    tr.appendChild(td);
  }
  return tr;
}

function formatNumber(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 100 || Number.isInteger(v)) return Math.round(v).toString();
    return v.toFixed(digits === undefined ? 2 : digits);
  }

  function formatBytes(v) {
    if (v === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return v.toFixed(i === 0 ? 0 : 1) + ' ' + units[i];
  }

  function formatAge(seconds) {
    if (seconds === undefined || seconds === null) return '–';
    if (seconds < 0) return 'none yet';
    if (seconds < 1) return Math.round(seconds * 1000) + ' ms ago';
    if (seconds < 120) return seconds.toFixed(1) + ' s ago';
    if (seconds < 7200) return Math.round(seconds / 60) + ' min ago';
    return (seconds / 3600).toFixed(1) + ' h ago';
  }

  // ------------------------------------------------------------------------------------------
  // Charts: time on x (the last HISTORY_MS), one line per series, a legend with the latest values.

  class LineChart {
    // options: series [{name, color}], format(v), zeroBased (default true), step (default false)
    constructor(id, options) {
      this.id = id;
      this.figure = $(id);
      this.canvas = this.figure.querySelector('canvas');
      this.noteEl = this.figure.querySelector('.note');
      this.series = options.series;
      this.format = options.format || ((v) => formatNumber(v));
      this.zeroBased = options.zeroBased !== false;
      this.step = options.step === true;
      this.points = [];  // [t, [value per series (null: none)]]
      this.note = '';
      state.charts[id] = {points: 0, last: null, note: ''};
      if (window.ResizeObserver) new ResizeObserver(() => this.draw()).observe(this.canvas);
    }

    push(t, values) {
      this.points.push([t, values]);
      while (this.points.length > 0 && this.points[0][0] < t - HISTORY_MS) this.points.shift();
      const s = state.charts[this.id];
      s.points = this.points.filter((p) => p[1].some((v) => v !== null)).length;
      s.last = values;
    }

    setNote(text) {
      this.note = text || '';
      state.charts[this.id].note = this.note;
      this.noteEl.textContent = this.note;
    }

    draw() {
      const canvas = this.canvas;
      const ratio = window.devicePixelRatio || 1;
      const width = canvas.clientWidth;
      const height = canvas.clientHeight;
      if (width === 0 || height === 0) return;
      if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
      if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
      const g = canvas.getContext('2d');
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, width, height);
      g.font = '11px system-ui, sans-serif';

      const left = 48;
      const right = width - 8;
      const top = 22;
      const bottom = height - 18;
      const now = Date.now();
      const first = this.points.length ? this.points[0][0] : now;
      const spanMs = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, now - first));
      const t0 = now - spanMs;

      let lo = Infinity;
      let hi = -Infinity;
      for (const [, values] of this.points) {
        for (const v of values) {
          if (v === null || !Number.isFinite(v)) continue;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      const empty = lo === Infinity;
      if (empty) {
        lo = 0;
        hi = 1;
      }
      if (this.zeroBased) lo = Math.min(0, lo);
      if (hi - lo < 1e-9) hi = lo + (this.zeroBased ? 1 : Math.max(1, Math.abs(lo) * 0.01));
      const span = niceStep((hi - lo) / 4);
      lo = Math.floor(lo / span) * span;
      hi = Math.ceil(hi / span) * span;
      if (hi === lo) hi = lo + span;
      const x = (t) => left + ((t - t0) / spanMs) * (right - left);
      const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);

      // Grid and axis labels.
      g.strokeStyle = '#e5e7eb';
      g.fillStyle = '#6b7280';
      g.lineWidth = 1;
      g.textAlign = 'right';
      g.textBaseline = 'middle';
      for (let v = lo; v <= hi + span / 2; v += span) {
        const yy = Math.round(y(v)) + 0.5;
        g.beginPath();
        g.moveTo(left, yy);
        g.lineTo(right, yy);
        g.stroke();
        g.fillText(this.format(v), left - 4, yy);
      }
      g.textBaseline = 'alphabetic';
      g.textAlign = 'left';
      g.fillText('−' + Math.round(spanMs / 60000) + ' min', left, height - 4);
      g.textAlign = 'right';
      g.fillText('now', right, height - 4);

      // Lines.
      g.lineWidth = 1.5;
      this.series.forEach((series, k) => {
        g.strokeStyle = series.color;
        g.beginPath();
        let drawing = false;
        let lastY = 0;
        for (const [t, values] of this.points) {
          const v = values[k];
          if (v === null || !Number.isFinite(v)) {
            drawing = false;
            continue;
          }
          const xx = x(t);
          const yy = y(v);
          if (!drawing) {
            g.moveTo(xx, yy);
            drawing = true;
          } else if (this.step) {
            g.lineTo(xx, lastY);
            g.lineTo(xx, yy);
          } else {
            g.lineTo(xx, yy);
          }
          lastY = yy;
        }
        g.stroke();
      });

      // Legend: each series' name and latest value.
      g.textAlign = 'left';
      g.textBaseline = 'alphabetic';
      let lx = left;
      const latest = this.points.length ? this.points[this.points.length - 1][1] : [];
      this.series.forEach((series, k) => {
        const v = latest[k];
        const text = series.name + ' ' + (v === null || v === undefined ? '–' : this.format(v));
        g.fillStyle = series.color;
        g.fillRect(lx, 8, 10, 3);
        g.fillStyle = '#374151';
        g.fillText(text, lx + 14, 13);
        lx += g.measureText(text).width + 28;
      });
      if (empty) {
        g.fillStyle = '#9ca3af';
        g.textAlign = 'center';
        g.fillText(this.points.length ? 'no data' : 'waiting for data…', (left + right) / 2,
                   (top + bottom) / 2);
      }
    }
  }

  // 1, 2 or 5 times a power of ten, at least `raw`.
  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) {
      if (m * p >= raw) return m * p;
    }
    return 10 * p;
  }

  const ms = (v) => formatNumber(v, v < 10 ? 2 : 1);
  const charts = {
    events: new LineChart('chart-events', {series: [{name: 'learnt', color: COLORS[0]}]}),
    lag: new LineChart('chart-lag', {series: [{name: 'lag', color: COLORS[0]}]}),
    freshness: new LineChart('chart-freshness', {
      series: [
        {name: 'p50', color: COLORS[0]},
        {name: 'p99', color: COLORS[1]},
        {name: 'since last learnt', color: COLORS[2]},
      ],
      format: (v) => formatNumber(v, 3),
    }),
    requests: new LineChart('chart-requests', {
      series: [{name: 'all', color: COLORS[0]}, {name: '5xx', color: COLORS[1]}],
    }),
    latency: new LineChart('chart-latency', {
      series: [{name: 'p50', color: COLORS[0]}, {name: 'p99', color: COLORS[1]}],
      format: ms,
    }),
    version: new LineChart('chart-version', {
      series: [{name: 'version', color: COLORS[2]}],
      zeroBased: false,
      step: true,
    }),
  };

  // ------------------------------------------------------------------------------------------
  // HTTP.

  // JSON from this server; throws an Error whose message names the path and says what went wrong
  // (the API's own {"error":{"message"}} when it sent one).
  async function fetchJson(path, init) {
    const r = await fetchWithTimeout(path, init);
    const text = await r.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      if (r.ok) throw new Error(path + ': the answer is not JSON');
    }
    if (!r.ok) {
      const message = body && body.error && body.error.message ? body.error.message : r.statusText;
      const error = new Error(path + ': HTTP ' + r.status + ' ' + message);
      error.status = r.status;
      throw error;
    }
    return body;
  }

  async function fetchWithTimeout(path, init) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      return await fetch(path, Object.assign({signal: abort.signal, cache: 'no-store'}, init));
    } catch (e) {
      const reason = e.name === 'AbortError' ? 'no answer in ' + FETCH_TIMEOUT_MS / 1000 + ' s'
                                             : 'unreachable (' + e.message + ')';
      throw new Error(path + ': ' + reason);
    } finally {
      clearTimeout(timer);
    }
  }

  const enc = encodeURIComponent;

  // ------------------------------------------------------------------------------------------
  // Metrics: tiles, charts and the route table from two consecutive scrapes.

  let previous = null;  // {t, samples}

  const isApiRoute = (l) => typeof l.route === 'string' && l.route.startsWith('/v1/');
  const valueOrNull = (v) => (v === undefined ? null : v);
  const freshnessNote =
      'p50/p99 need the histogram freshet_freshness_seconds, which this server does not export; ' +
      'shown: seconds since an event was last learnt (freshet_last_applied_age_seconds).';
  const freshnessIdle =
      'p50/p99: no event with an arrival time (a Kafka message, a POST) was learnt in the last ' +
      'interval; replayed files have none.';

  function updateMetrics(t, samples) {
    const get = (name) => total(samples, name);
    $('tile-version').textContent = formatNumber(get('freshet_model_version'));
    $('tile-events').textContent = formatNumber(get('freshet_events_applied'));
    $('tile-users').textContent = formatNumber(get('freshet_users'));
    $('tile-items').textContent = formatNumber(get('freshet_items'));
    $('tile-last-applied').textContent = formatAge(get('freshet_last_applied_age_seconds'));
    const healthy = get('freshet_store_healthy');
    const store = $('tile-store');
    store.textContent = healthy === undefined ? '–' : healthy === 1 ? 'writing' : 'FAILING';
    store.classList.toggle('bad', healthy === 0);
    const backend = (samples.get('freshet_compute_backend_info') || [])[0];
    $('tile-backend').textContent = backend ? backend.labels.backend || '–' : '–';
    if (backend && backend.labels.note) $('tile-backend').title = backend.labels.note;
    $('tile-memory').textContent = formatBytes(get('freshet_resident_memory_bytes'));

    const lag = get('freshet_consumer_lag_messages');
    charts.lag.push(t, [valueOrNull(lag)]);
    charts.lag.setNote(lag === undefined
                           ? 'No Kafka source: freshet_consumer_lag_messages is not exported.'
                           : '');
    charts.version.push(t, [valueOrNull(get('freshet_model_version'))]);

    // Freshness, event → learnt: the histogram when the server exports one, and always the time
    // since an event was last learnt.
    const freshNow = buckets(samples, 'freshet_freshness_seconds');
    const sinceLearnt = get('freshet_last_applied_age_seconds');
    const since = sinceLearnt === undefined || sinceLearnt < 0 ? null : sinceLearnt;

    if (previous === null) {
      charts.freshness.push(t, [null, null, since]);
      charts.freshness.setNote(freshNow ? '' : freshnessNote);
      return;
    }
    const dt = (t - previous.t) / 1000;
    const rate = (name, keep) => {
      const a = total(samples, name, keep);
      const b = total(previous.samples, name, keep);
      if (a === undefined || b === undefined || a < b || dt <= 0) return null;
      return (a - b) / dt;
    };

    charts.events.push(t, [rate('freshet_events_applied')]);
    charts.requests.push(t, [
      rate('freshet_http_requests_total'),
      rate('freshet_http_requests_total', (l) => /^5/.test(l.status || '')),
    ]);
    const latency = bucketDelta(buckets(samples, 'freshet_http_request_duration_seconds', isApiRoute),
                                buckets(previous.samples, 'freshet_http_request_duration_seconds',
                                        isApiRoute));
    const p50 = quantile(0.5, latency);
    const p99 = quantile(0.99, latency);
    charts.latency.push(t, [p50 === null ? null : p50 * 1000, p99 === null ? null : p99 * 1000]);
    charts.latency.setNote(latency && latency[latency.length - 1][1] === 0
                               ? 'No /v1 requests in the last interval.'
                               : '');

    const fresh = bucketDelta(freshNow, buckets(previous.samples, 'freshet_freshness_seconds'));
    charts.freshness.push(t, [quantile(0.5, fresh), quantile(0.99, fresh), since]);
    charts.freshness.setNote(!freshNow ? freshnessNote
                             : fresh && fresh.length > 0 && fresh[fresh.length - 1][1] === 0
                                 ? freshnessIdle
                                 : '');

    updateRoutes(samples, previous.samples, dt);
  }

  function updateRoutes(samples, before, dt) {
    const rows = new Map();
    for (const s of samples.get('freshet_http_requests_total') || []) {
      const key = s.labels.method + ' ' + s.labels.route;
      if (!rows.has(key)) rows.set(key, {method: s.labels.method, route: s.labels.route});
    }
    const body = $('routes-body');
    body.textContent = '';
    const sorted = Array.from(rows.values()).sort((a, b) => a.route.localeCompare(b.route));
    for (const row of sorted) {
      const keep = (l) => l.method === row.method && l.route === row.route;
      const now = total(samples, 'freshet_http_requests_total', keep) || 0;
      const then = total(before, 'freshet_http_requests_total', keep) || 0;
      const delta = bucketDelta(buckets(samples, 'freshet_http_request_duration_seconds', keep),
                                buckets(before, 'freshet_http_request_duration_seconds', keep));
      const q = (p) => {
        const v = quantile(p, delta);
        return v === null ? '–' : ms(v * 1000);
      };
      body.appendChild(tableRow([[row.method, false], [row.route, false],
                                 [formatNumber(Math.max(0, now - then) / dt), true],
                                 [q(0.5), true], [q(0.99), true], [formatNumber(now), true]]));
    }
    if (sorted.length === 0) {
      body.innerHTML = '<tr><td colspan="6" class="muted">no HTTP metrics exported</td></tr>';
    }
  }

  // ------------------------------------------------------------------------------------------
  // Item lists (recommendations, latest events, similar items).

  // When each item of a list came into it: items that came within NEW_MS of a redraw are marked
  // new. `previous` is the list's last Map, or null for its first answer (nothing new in it).
  const NEW_MS = 5000;
  const arrived = {recent: null, recs: null, similar: null};

  function arrivals(previous, items) {
    const now = Date.now();
    const next = new Map();
    for (const it of items) {
      next.set(it.item, previous === null ? 0 : previous.has(it.item) ? previous.get(it.item) : now);
    }
    return next;
  }

  // <li>s for items [{item, score?, title?, category?}], new ones marked (`since`, from
  // arrivals()). Clicking an item shows its similar items.
  function renderItems(list, items, since) {
    list.textContent = '';
    const now = Date.now();
    let maxScore = 0;
    for (const it of items) {
      if (typeof it.score === 'number') maxScore = Math.max(maxScore, Math.abs(it.score));
    }
    for (const it of items) {
      const li = document.createElement('li');
      if (now - since.get(it.item) < NEW_MS) li.classList.add('new');
      const name = document.createElement('a');
      name.href = '#';
      name.className = 'name';
      name.textContent = it.title ? it.title : it.item;
      name.title = 'item ' + it.item + ': show similar items';
      name.addEventListener('click', (e) => {
        e.preventDefault();
        showSimilar(it.item, it.title);
      });
      li.appendChild(name);
      if (it.title) li.appendChild(span('id', it.item));
      if (it.category) li.appendChild(span('category', it.category.split('|').join(' · ')));
      if (typeof it.score === 'number') {
        const bar = span('score', '');
        const track = span('track', '');
        const fill = span('fill', '');
        fill.style.width = (maxScore > 0 ? (100 * Math.abs(it.score)) / maxScore : 0) + '%';
        track.appendChild(fill);
        bar.appendChild(track);
        bar.appendChild(span('value', it.score.toFixed(3)));
        li.appendChild(bar);
      }
      list.appendChild(li);
    }
  }

  function span(className, text) {
    const s = document.createElement('span');
    s.className = className;
    s.textContent = text;
    return s;
  }

  // Shows `message` in the section's error line; null hides it.
  function showError(id, message) {
    const el = $(id);
    el.hidden = !message;
    el.textContent = message || '';
  }

  // ------------------------------------------------------------------------------------------
  // User view.

  function watchUser(id) {
    const u = state.user;
    u.id = id;
    u.events = null;
    u.recent = null;
    u.recs = [];
    u.changes = 0;
    u.updates = 0;
    u.error = null;
    arrived.recent = null;
    arrived.recs = null;
    $('user-recent').textContent = '';
    $('user-recs').textContent = '';
    $('event-form').hidden = false;
    $('event-result').textContent = '';
    history.replaceState(null, '', '#user=' + enc(id));
    return refreshUser();
  }

  async function refreshUser() {
    const u = state.user;
    const id = u.id;
    if (!id) return;
    const [info, recs] = await Promise.allSettled([
      fetchJson('/v1/users/' + enc(id) + '?fields=title'),
      fetchJson('/v1/users/' + enc(id) + '/recommendations?k=10&fields=title,category'),
    ]);
    if (u.id !== id) return;  // another user was chosen meanwhile
    u.updates++;
    const unknown = info.status === 'rejected' && info.reason.status === 404;
    const errors = [info, recs].filter((r) => r.status === 'rejected' && !(r === info && unknown));
    u.error = errors.length ? errors.map((r) => r.reason.message).join('; ') : null;
    showError('user-error', u.error);

    const parts = [];
    if (unknown) {
      parts.push('Not seen yet: no events learnt for this user.');
    } else if (info.status === 'fulfilled') {
      const d = info.value;
      u.events = d.events;
      parts.push(formatNumber(d.events) + ' events learnt');
      if (d.applied_ms_ago !== null && d.applied_ms_ago !== undefined) {
        parts.push('latest learnt ' + formatAge(d.applied_ms_ago / 1000));
      }
      if (d.last_event_ts) parts.push('latest event time ' + new Date(d.last_event_ts).toISOString());
      const recent = Array.isArray(d.recent) ? d.recent : null;
      if (recent && u.recent && recent.map((r) => r.item).join() !== u.recent.map((r) => r.item).join()) {
        u.changes++;
      }
      u.recent = recent;
      $('user-recent-note').hidden = recent !== null;
      $('user-recent-note').textContent =
          recent === null ? 'This server does not list a user\u2019s latest events (no "recent" in GET /v1/users/{user}).' : '';
      arrived.recent = recent ? arrivals(arrived.recent, recent) : null;
      renderItems($('user-recent'), recent || [], arrived.recent);
    }
    if (recs.status === 'fulfilled') {
      const d = recs.value;
      const items = Array.isArray(d.items) ? d.items : [];
      if (arrived.recs !== null && items.map((r) => r.item).join() !== u.recs.map((r) => r.item).join()) {
        u.changes++;
      }
      u.recs = items;
      if (unknown || u.events === null) u.events = d.user_events;
      parts.push((d.source === 'popular' ? 'popular items (not personalized)' : 'personalized') +
                 ', model version ' + d.model_version);
      arrived.recs = arrivals(arrived.recs, items);
      renderItems($('user-recs'), items, arrived.recs);
    }
    $('user-summary').textContent = 'User ' + id + ': ' + parts.join(' · ');
    $('user-summary').classList.remove('muted');
  }

  // POSTs one event for the watched user, then asks for recommendations until the user's event
  // count shows it learnt: the time from sending to seeing it is the freshness one user sees.
  async function sendTestEvent() {
    const u = state.user;
    const id = u.id;
    let item = $('event-item').value.trim();
    if (!item && u.recs.length) item = u.recs[0].item;
    const result = $('event-result');
    if (!item) {
      result.textContent = 'enter an item id';
      return;
    }
    const event = {user: id, item: item};
    const type = $('event-type').value.trim();
    if (type) event.type = type;
    const recsPath = '/v1/users/' + enc(id) + '/recommendations?k=10&fields=title,category';
    result.textContent = 'sending…';
    try {
      const before = (await fetchJson(recsPath)).user_events;
      const sent = performance.now();
      const answer = await fetchJson('/v1/events', {
        method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify(event),
      });
      let seenAfter = null;
      while (performance.now() - sent < 10000) {
        const d = await fetchJson(recsPath);
        if (d.user_events > before) {
          seenAfter = performance.now() - sent;
          break;
        }
        await sleep(50);
      }
      result.textContent = 'item ' + item + ' sent (to ' + answer.to + '); ' +
                           (seenAfter === null ? 'not learnt within 10 s'
                                               : 'learnt and visible after ' + Math.round(seenAfter) + ' ms');
      state.user.lastTestEvent = {item: item, to: answer.to, visibleMs: seenAfter};
    } catch (e) {
      result.textContent = 'failed: ' + e.message;
    }
    await refreshUser();
  }

  const sleep = (msec) => new Promise((resolve) => setTimeout(resolve, msec));

  // ------------------------------------------------------------------------------------------
  // Similar items.

  function showSimilar(item, title) {
    state.similar.id = item;
    state.similar.title = title || null;
    state.similar.items = [];
    state.similar.updates = 0;
    arrived.similar = null;
    $('similar-id').value = item;
    $('similar-items').textContent = '';
    return refreshSimilar();
  }

  async function refreshSimilar() {
    const s = state.similar;
    const id = s.id;
    if (!id) return;
    try {
      const d = await fetchJson('/v1/items/' + enc(id) + '/similar?k=10&fields=title,category');
      if (s.id !== id) return;
      s.items = Array.isArray(d.items) ? d.items : [];
      s.error = null;
      $('similar-summary').textContent = 'Items like ' + (s.title ? s.title + ' (' + id + ')' : id) +
                                         ', model version ' + d.model_version +
                                         (s.items.length ? '' : ': none yet');
      arrived.similar = arrivals(arrived.similar, s.items);
      renderItems($('similar-items'), s.items, arrived.similar);
    } catch (e) {
      if (s.id !== id) return;
      s.error = e.message;
    }
    s.updates++;
    showError('similar-error', s.error);
  }

  // ------------------------------------------------------------------------------------------
  // Snapshots: listing and creating need the admin token; without it nothing is sent to /admin.

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  function updateSnapshotMode() {
    const admin = token() !== '';
    state.snapshots.mode = admin ? 'admin' : 'read-only';
    $('snapshots-mode').textContent = admin
        ? 'Admin token set for this browser tab (kept in sessionStorage until the tab closes).'
        : 'Read-only: listing and creating snapshots need the admin token. Without it this page ' +
          'sends nothing to /admin.';
    $('snapshots-actions').hidden = !admin;
    $('token-forget').hidden = !admin;
    if (!admin) {
      $('snapshots-table').hidden = true;
      state.snapshots.list = null;
      state.snapshots.error = null;
      showError('snapshots-error', null);
    }
  }

  function adminInit(init) {
    const headers = Object.assign({}, (init && init.headers) || {}, {Authorization: 'Bearer ' + token()});
    return Object.assign({}, init || {}, {headers: headers});
  }

  async function refreshSnapshots() {
    if (!token()) return;
    try {
      const list = await fetchJson('/admin/snapshots', adminInit());
      state.snapshots.list = list;
      state.snapshots.error = null;
      const body = $('snapshots-body');
      body.textContent = '';
      for (const m of list) {
        body.appendChild(tableRow([[m.id, false], [new Date(m.created_ms).toLocaleString(), false],
                                   [m.model_version, true], [formatNumber(m.events_applied), true],
                                   [formatNumber(m.users), true], [formatNumber(m.items), true],
                                   [m.algorithm + ' d=' + m.dim, false]]));
      }
      if (list.length === 0) {
        body.innerHTML = '<tr><td colspan="7" class="muted">no snapshots yet</td></tr>';
      }
      $('snapshots-table').hidden = false;
    } catch (e) {
      state.snapshots.error = e.status === 401 || e.status === 403
                                  ? e.message + ' (the token was refused)'
                                  : e.message;
    }
    showError('snapshots-error', state.snapshots.error);
  }

  async function createSnapshot() {
    if (!token()) return;
    if (!window.confirm('Create a snapshot of the current state now?')) return;
    try {
      await fetchJson('/admin/snapshots', adminInit({method: 'POST'}));
    } catch (e) {
      showError('snapshots-error', e.message);
      return;
    }
    await refreshSnapshots();
  }

  // ------------------------------------------------------------------------------------------
  // The polling loop: one round at a time, every state.intervalS seconds (at least 1). A tab in
  // the background asks nothing; it polls again as soon as it is shown (the rates then span the
  // gap).

  let timer = null;
  let polling = false;

  async function poll() {
    timer = null;
    if (polling || document.hidden) return;
    polling = true;
    const started = Date.now();
    try {
      await refreshAll();
    } finally {
      // Even after an unexpected error (which the console shows), the page keeps refreshing.
      polling = false;
      state.polls++;
      state.lastPollMs = Date.now() - started;
      schedule(Math.max(0, state.intervalS * 1000 - (Date.now() - started)));
    }
  }

  async function refreshAll() {
    try {
      const r = await fetchWithTimeout('/metrics');
      if (!r.ok) throw new Error('/metrics: HTTP ' + r.status + ' ' + r.statusText);
      const samples = parseMetrics(await r.text());
      const t = Date.now();
      updateMetrics(t, samples);
      previous = {t, samples};
      state.lastError = null;
      setStatus('live · updated ' + new Date(t).toLocaleTimeString(), false);
    } catch (e) {
      state.pollErrors++;
      state.lastError = e.message;
      setStatus('error: ' + e.message, true);
    }
    await Promise.allSettled([refreshUser(), refreshSimilar()]);
    for (const chart of Object.values(charts)) chart.draw();
  }

  function schedule(delay) {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(poll, delay);
  }

  function setStatus(text, bad) {
    const el = $('status');
    el.textContent = text;
    el.classList.toggle('bad', bad);
  }

  // ------------------------------------------------------------------------------------------
  // Start.

  function init() {
    const params = new URLSearchParams(location.search);
    const requested = parseFloat(params.get('interval'));
    if (requested >= 1) state.intervalS = requested;
    const select = $('interval');
    if (!Array.from(select.options).some((o) => parseFloat(o.value) === state.intervalS)) {
      const o = document.createElement('option');
      o.value = String(state.intervalS);
      o.textContent = state.intervalS + ' s';
      select.appendChild(o);
    }
    select.value = String(state.intervalS);
    select.addEventListener('change', () => {
      state.intervalS = Math.max(1, parseFloat(select.value));
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && timer === null && !polling) poll();
    });

    $('user-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = $('user-id').value.trim();
      if (id) watchUser(id);
    });
    $('event-form').addEventListener('submit', (e) => {
      e.preventDefault();
      sendTestEvent();
    });
    $('similar-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = $('similar-id').value.trim();
      if (id) showSimilar(id, null);
    });
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('admin-token').value.trim();
      $('admin-token').value = '';
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      updateSnapshotMode();
      refreshSnapshots();
    });
    $('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      updateSnapshotMode();
    });
    $('snapshots-refresh').addEventListener('click', refreshSnapshots);
    $('snapshots-create').addEventListener('click', createSnapshot);
    updateSnapshotMode();
    refreshSnapshots();

    const fromHash = /^#user=(.+)$/.exec(location.hash);
    if (fromHash) {
      $('user-id').value = decodeURIComponent(fromHash[1]);
      watchUser($('user-id').value);
    }
    poll();
  }

  window.freshetDashboard.parseMetrics = parseMetrics;
  window.freshetDashboard.quantile = quantile;
  init();
})();
