// server.js — server health from /metrics (Prometheus text, parsed here): requests/s and latency
// percentiles over the last scrape interval (from the counters and the duration histogram),
// queue depth, running requests, batch size, KV cache use, connections, memory, uptime; and the
// jobs running on CPU and GPU (from the jobs API).
import { api, h, fmtBytes, fmtDur, fmtNum } from './api.js';
import { LineChart } from './chart.js';

// Parse the exposition format into [{name, labels: {k: v}, value}]. Comments and blank lines
// are skipped; label values are unescaped (\\, \", \n).
export function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    out.push({ name: m[1], labels, value: v });
  }
  return out;
}

const sum = (ms, name, pred = () => true) => ms.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);
const one = (ms, name) => { const s = ms.find((x) => x.name === name); return s ? s.value : null; };

// Cumulative buckets {le: count} summed over the other labels.
function buckets(ms, name) {
  const b = new Map();
  for (const s of ms) if (s.name === name + '_bucket') {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    b.set(le, (b.get(le) || 0) + s.value);
  }
  return [...b.entries()].sort((x, y) => x[0] - y[0]);
}

// Quantile q of a cumulative histogram [[le, count]...], linear inside the bucket.
export function quantile(bs, q) {
  if (!bs.length) return null;
  const total = bs[bs.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0, prevC = 0;
  for (const [le, c] of bs) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevC) / Math.max(1e-12, c - prevC));
    }
    prevLe = le; prevC = c;
  }
  return prevLe;
}

function diff(a, b) { // b - a, bucket by bucket
  const m = new Map(a);
  return b.map(([le, c]) => [le, c - (m.get(le) || 0)]);
}

const fmtMs = (s) => (s === null ? '—' : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms' : s.toFixed(2) + ' s');

export function serverView() {
  const st = { alive: true, timer: 0, prev: null, t0: performance.now() / 1000 };
  const err = h('p.error#server-error', { role: 'alert' });
  const stat = (id, label) => { const b = h('b', { id }, '—'); return [h('div.stat', b, h('span', label)), b]; };
  const cells = {};
  const defs = [
    ['m-rps', 'requests / s'], ['m-p50', 'latency p50'], ['m-p90', 'latency p90'], ['m-p99', 'latency p99'],
    ['m-queue', 'queue depth (waiting)'], ['m-running', 'inference running'], ['m-batch', 'last batch size'],
    ['m-kv', 'KV cache in use'], ['m-conns', 'open connections'], ['m-rss', 'resident memory'],
    ['m-uptime', 'uptime'], ['m-ready', 'ready'], ['m-total', 'requests served'],
    ['m-jobs-cpu', 'jobs running on CPU'], ['m-jobs-gpu', 'jobs running on GPU'], ['m-gen', 'generated tokens'],
  ];
  const statEls = defs.map(([id, label]) => { const [e, b] = stat(id, label); cells[id] = b; return e; });
  const rpsCanvas = h('canvas#rps-chart', { 'aria-label': 'requests per second' });
  const latCanvas = h('canvas#p99-chart', { 'aria-label': 'p99 latency' });
  const css = getComputedStyle(document.documentElement);
  const rpsChart = new LineChart(rpsCanvas, { color: css.getPropertyValue('--c1').trim() });
  const latChart = new LineChart(latCanvas, { color: css.getPropertyValue('--c2').trim() });
  rpsChart.smooth = 0; latChart.smooth = 0;
  const handlers = h('tbody');
  const info = h('p.muted');

  const el = h('section', h('h1', 'Server'), err,
    h('div.panel', h('div.stats', statEls), info),
    h('div.grid.charts',
      h('div.panel.chart', h('header', h('b', 'requests / s')), rpsCanvas),
      h('div.panel.chart', h('header', h('b', 'p99 latency (s) per interval')), latCanvas)),
    h('div.panel', h('h2', 'Requests by handler'), h('div.table-wrap', h('table#handlers',
      h('thead', h('tr', h('th', 'handler'), h('th.num', '2xx'), h('th.num', '4xx'), h('th.num', '5xx'), h('th.num', 'p50'), h('th.num', 'p99'))),
      handlers))));

  async function scrape() {
    clearTimeout(st.timer);
    try {
      const text = await api('/metrics', { headers: { Accept: 'text/plain' } });
      if (!st.alive) return;
      const ms = parseProm(text);
      const now = performance.now() / 1000;
      const total = sum(ms, 'http_requests_total');
      const bs = buckets(ms, 'http_request_duration_seconds');
      let rps = null, win = bs;
      if (st.prev) {
        const dt = now - st.prev.t;
        rps = dt > 0 ? (total - st.prev.total) / dt : null;
        const d = diff(st.prev.bs, bs);
        if (d.length && d[d.length - 1][1] > 0) win = d;
      }
      st.prev = { t: now, total, bs };
      const set = (id, v) => { cells[id].textContent = v; };
      set('m-rps', rps === null ? '…' : fmtNum(rps, 3));
      set('m-p50', fmtMs(quantile(win, 0.5)));
      set('m-p90', fmtMs(quantile(win, 0.9)));
      set('m-p99', fmtMs(quantile(win, 0.99)));
      set('m-queue', fmtNum(one(ms, 'bitdistill_num_requests_waiting') ?? 0));
      set('m-running', fmtNum(one(ms, 'bitdistill_num_requests_running') ?? 0));
      set('m-batch', fmtNum(one(ms, 'bitdistill_batch_size') ?? 0));
      const kv = one(ms, 'bitdistill_kv_cache_usage_ratio');
      set('m-kv', kv === null ? '—' : (kv * 100).toFixed(1) + '%');
      set('m-conns', fmtNum(one(ms, 'http_open_connections')));
      set('m-rss', fmtBytes(one(ms, 'process_resident_memory_bytes')));
      const start = one(ms, 'process_start_time_seconds');
      set('m-uptime', start ? fmtDur(Date.now() / 1000 - start) : '—');
      set('m-ready', one(ms, 'bitdistill_ready') ? 'yes' : 'no');
      set('m-total', Math.round(total).toLocaleString());
      set('m-gen', Math.round(sum(ms, 'bitdistill_generation_tokens_total')).toLocaleString());
      const ver = ms.find((s) => s.name === 'bitdistill_build_info');
      info.textContent = `bitdistilld ${ver ? ver.labels.version : ''} · ${ms.length} series parsed from /metrics · every 2 s`;
      if (rps !== null) {
        rpsChart.add(now - st.t0, rps);
        const p = quantile(win, 0.99);
        if (p !== null) latChart.add(now - st.t0, p);
      }
      // per handler
      const names = [...new Set(ms.filter((s) => s.name === 'http_requests_total').map((s) => s.labels.handler))].sort();
      handlers.replaceChildren(...names.map((n) => {
        const c = (cls) => sum(ms, 'http_requests_total', (l) => l.handler === n && String(l.status || l.code || '')[0] === cls);
        const hb = buckets(ms.filter((s) => s.labels.handler === n), 'http_request_duration_seconds');
        return h('tr', h('td.mono', n), h('td.num', c('2')), h('td.num', c('4')), h('td.num', c('5')),
          h('td.num', fmtMs(quantile(hb, 0.5))), h('td.num', fmtMs(quantile(hb, 0.99))));
      }));
      err.textContent = '';
    } catch (e) {
      if (!st.alive) return;
      err.textContent = 'Cannot read /metrics: ' + (e.text || e.message);
    }
    jobsRunning();
    if (st.alive) st.timer = setTimeout(scrape, 2000);
  }

  async function jobsRunning() {
    try {
      const r = await api('/v1/fine_tuning/jobs?limit=100');
      const run = r.data.filter((j) => j.status === 'running');
      cells['m-jobs-cpu'].textContent = run.filter((j) => (j.device || 'cpu') === 'cpu').length;
      cells['m-jobs-gpu'].textContent = run.filter((j) => (j.device || '').startsWith('cuda')).length;
    } catch (e) {
      cells['m-jobs-cpu'].textContent = cells['m-jobs-gpu'].textContent = e.status === 401 || e.status === 403 ? 'key?' : '—';
    }
  }

  scrape();
  return { el, destroy() { st.alive = false; clearTimeout(st.timer); rpsChart.destroy(); latChart.destroy(); } };
}
